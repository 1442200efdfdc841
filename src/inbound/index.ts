export type { HandlerOptions } from "./handlers.js";
export { PROVIDER_NAMES } from "./providers/index.js";
export type { ProviderName, ProviderOptions } from "./providers/types.js";
export { NonRetryableError } from "./retry.js";
export { InboundService, type InboundSettings } from "./service.js";
export { PROCESSING_DEFAULTS } from "./source-options.js";
export type { SourceInput } from "./source-registry.js";
export type { InboxQuery, InboxStore, SourceStats } from "./store/inbox-store.js";
export { PostgresInboxStore } from "./store/postgres-inbox-store.js";
export { SqliteInboxStore } from "./store/sqlite-inbox-store.js";
export type {
  FieldRef,
  ForwardOptions,
  InboundEvent,
  InboundHandler,
  InboxItem,
  InboxStatus,
  Source,
  SourceOptions,
  StaleAction,
} from "./types.js";
