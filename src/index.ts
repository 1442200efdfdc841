export { createApiHandler, createApiServer } from "./api/server.js";
export { loadConfig, type PigeonConfig } from "./core/config.js";
export { PigeonError } from "./core/errors.js";
export { PigeonEngine } from "./engine.js";
export { generateSecret } from "./signing/secrets.js";
export { signPayload, verifyPayload } from "./signing/standard-webhooks.js";
export { SqliteStore } from "./store/sqlite/sqlite-store.js";
export type { Store } from "./store/store.js";
