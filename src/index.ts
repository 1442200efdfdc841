export { createApiHandler, createApiServer } from "./api/server.js";
export { loadConfig, type PigeonConfig } from "./core/config.js";
export { PigeonError } from "./core/errors.js";
export { createApplication, createEndpoint } from "./embedded/admin.js";
export { type OutboxTransaction, SqliteOutbox } from "./embedded/outbox.js";
export { PigeonEngine } from "./engine.js";
export * from "./inbound/index.js";
export {
  answerHandshake,
  createReceiver,
  type Receiver,
  type ReceiverOptions,
  verify,
  verifyRequest,
} from "./receiver/index.js";
export { generateSecret } from "./signing/secrets.js";
export { signPayload, verifyPayload } from "./signing/standard-webhooks.js";
export { SqliteStore } from "./store/sqlite/sqlite-store.js";
export type { Store } from "./store/store.js";
