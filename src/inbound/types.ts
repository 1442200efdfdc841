import type { GenericHmacOptions, ProviderName } from "./providers/types.js";

/**
 * The records of the receiving side: sources (who may send to us and how they sign), inbox items
 * (every request we acknowledged, exactly as it arrived) and what handlers are given.
 * Times are epoch milliseconds.
 */

/** Where a value comes from: an RFC 6901 pointer into the JSON body, or a request header. */
export type FieldRef = { pointer: string } | { header: string };

export type StaleAction = "skip" | "deliver";

export interface ForwardOptions {
  /** The Pigeon application (id or uid) each item is published to as a message. */
  appId: string;
  /** The message's event type; default: the item's event type, else `<provider>.webhook`. */
  eventType?: string;
}

/**
 * Per-source settings. Verification settings are handed to the providers layer as they are; the
 * rest decide how items are typed, ordered and processed. Every field is optional; the defaults
 * are in `resolveProcessing` (src/inbound/source-options.ts).
 */
export interface SourceOptions {
  // Verification (see ProviderOptions in src/inbound/providers/types.ts).
  /** Seconds a signed timestamp may be away from now. Default 300; 0 disables the check. */
  toleranceSec?: number;
  /** The URL the provider calls, when Pigeon sits behind a proxy (Twilio and Square sign it). */
  publicUrl?: string;
  /** Required for provider `generic-hmac`. */
  generic?: GenericHmacOptions;
  /** Header read by provider `api-key`; default `x-api-key`. */
  apiKeyHeader?: string;
  /** Meta `hub.verify_token`; default: any of the secrets. */
  verifyToken?: string;
  /** Accept GitHub/Meta/Square legacy SHA-1 signatures. Default false. */
  allowSha1?: boolean;
  /** Event-id header for providers that define none (basic, api-key, none). */
  eventIdHeader?: string;
  /** Event-id JSON pointer for providers that define none. */
  eventIdPointer?: string;

  // Typing and ordering.
  /** Where the event type is; default: the provider's own (X-GitHub-Event, Stripe `type`, …). */
  eventType?: FieldRef;
  /** Items with the same key are processed one at a time and checked for staleness. */
  orderingKey?: FieldRef;
  /** Where the event time is (epoch s or ms, or an RFC 3339 string); default: the provider's own. */
  eventTime?: FieldRef;
  /** What to do with an event older than the newest processed for its key. Default `skip`. */
  staleAction?: StaleAction;

  // Processing.
  /** Most items of this source handled at once. Default 8. */
  concurrency?: number;
  /** Most items of this source handed on per second. Default: unlimited. */
  ratePerSecond?: number;
  /** Tries before an item is `failed`. Default 8. */
  maxAttempts?: number;
  /** First retry delay; doubled per attempt (±20 % jitter) up to `retryMaxMs`. Default 1000. */
  retryBaseMs?: number;
  /** Longest retry delay. Default 600000 (10 min). */
  retryMaxMs?: number;
  /** A handler still running after this long counts as failed. Default 30000. */
  handlerTimeoutMs?: number;
  /** Gateway mode: publish each item as a message of a Pigeon application. */
  forward?: ForwardOptions;
}

export interface Source {
  id: string;
  uid: string | null;
  name: string;
  provider: ProviderName;
  /** Every secret that may have signed a request (more than one during a rotation). */
  secrets: string[];
  options: SourceOptions;
  createdAt: number;
  updatedAt: number;
}

/**
 * - received: waiting to be handed on (new, or waiting for a retry)
 * - processing: claimed under a lease; the lease end is its next due time, so a crash re-runs it
 * - processed: handed on successfully (with `stale` set when delivered although stale)
 * - failed: every attempt failed, or a handler refused it for good
 * - duplicate: the provider re-sent an event we already have; recorded, never handed on
 * - stale: older than the newest event processed for its ordering key; not handed on
 */
export type InboxStatus = "received" | "processing" | "processed" | "failed" | "duplicate" | "stale";

export const INBOX_STATUSES: readonly InboxStatus[] = Object.freeze([
  "received",
  "processing",
  "processed",
  "failed",
  "duplicate",
  "stale",
]);

export type BodyKind = "json" | "form" | "xml" | "other";

/** A request as it arrived, plus what Pigeon read from it. */
export interface NewInboxItem {
  id: string;
  sourceId: string;
  eventId: string | null;
  eventType: string | null;
  eventTime: number | null;
  orderingKey: string | null;
  method: string;
  /** Path and query exactly as requested. */
  path: string;
  query: string;
  /** Header names lower-case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  body: Buffer;
  contentType: string | null;
  bodyKind: BodyKind;
  receivedAt: number;
}

export interface InboxItem extends NewInboxItem {
  status: InboxStatus;
  /** For a duplicate: the item that holds the first copy. */
  duplicateOf: string | null;
  attempts: number;
  nextAttemptAt: number | null;
  lastError: string | null;
  /** True when handed on although stale (`staleAction: "deliver"`). */
  stale: boolean;
  processedAt: number | null;
  updatedAt: number;
}

export type InsertOutcome =
  /** `claimed`: stored already claimed for the processor (see Handoff), ready to hand on. */
  | { id: string; status: "received"; claimed?: ClaimedItem }
  | { id: string; status: "duplicate"; duplicateOf: string }
  /** Not stored: the source was deleted while the request was in flight. */
  | { id: string; status: "rejected" };

/** An item taken for processing, with what the store knows about its ordering key. */
export interface ClaimedItem {
  item: InboxItem;
  /** The newest event time already processed for the item's ordering key, if any. */
  newestProcessedTime: number | null;
}

export type ItemOutcome =
  | { id: string; sourceId: string; result: "processed"; stale: boolean; mark?: OrderMark }
  | { id: string; sourceId: string; result: "stale" }
  | { id: string; sourceId: string; result: "retry"; nextAttemptAt: number; error: string }
  | { id: string; sourceId: string; result: "failed"; error: string };

/** Raises the newest processed event time of an ordering key (never lowers it). */
export interface OrderMark {
  key: string;
  eventTime: number;
}

/** What a handler is given. `id` is stable across retries: use it (or `eventId`) to be idempotent. */
export interface InboundEvent {
  /** The inbox item id (`in_…`). The same on every attempt. */
  id: string;
  /** The provider's event id, when it has one (de-duplication already used it). */
  eventId: string | null;
  eventType: string | null;
  source: { id: string; uid: string | null; name: string; provider: ProviderName };
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Readonly<Record<string, string>>;
  contentType: string | null;
  bodyKind: BodyKind;
  /** The raw body, byte for byte as received and verified. */
  body: Buffer;
  /** The body as UTF-8 text. */
  text(): string;
  /** The body parsed as JSON; throws SyntaxError when it is not JSON. */
  json<T = unknown>(): T;
  /** The body parsed as application/x-www-form-urlencoded. */
  form(): URLSearchParams;
  receivedAt: Date;
  eventTime: Date | null;
  orderingKey: string | null;
  /** 1 on the first try. */
  attempt: number;
  /** True only for a stale event handed on because the source says `staleAction: "deliver"`. */
  stale: boolean;
}

export type InboundHandler = (event: InboundEvent) => void | Promise<void>;
