import type { ProviderName } from "../providers/types.js";
import type {
  BodyKind,
  ClaimedItem,
  InboxItem,
  InboxStatus,
  NewInboxItem,
  Source,
  SourceOptions,
} from "../types.js";
import { INBOX_STATUSES } from "../types.js";
import { type InboxClaim, keyOf, type SourceStats } from "./inbox-store.js";

/**
 * Column mapping between inbox rows and inbound records, for both backends. SQLite hands JSON
 * columns back as text and booleans as 0/1; PostgreSQL hands `json` columns back parsed, BOOLEAN as
 * boolean and BIGINT as a string. The readers below accept either shape. JSON always goes in as
 * text, so what a caller stored is what it reads back, key order included.
 */

export type Row = Record<string, unknown>;

const str = (value: unknown): string => String(value);
const strOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);
const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
/** A JSON column: text (SQLite) or already parsed (PostgreSQL). */
const json = <T>(value: unknown, fallback: T): T => {
  if (value === null || value === undefined) return fallback;
  return (typeof value === "string" ? JSON.parse(value) : value) as T;
};

/** Columns of a source row, in the order of `sourceParams`. */
export const SOURCE_COLUMNS = [
  "id",
  "uid",
  "name",
  "provider",
  "secrets",
  "options",
  "created_at",
  "updated_at",
] as const;

export function sourceParams(source: Source): unknown[] {
  return [
    source.id,
    source.uid,
    source.name,
    source.provider,
    JSON.stringify(source.secrets),
    JSON.stringify(source.options),
    source.createdAt,
    source.updatedAt,
  ];
}

/** The same values keyed by column, for named-parameter statements. */
export function sourceToRow(source: Source): Row {
  const values = sourceParams(source);
  return Object.fromEntries(SOURCE_COLUMNS.map((column, i) => [column, values[i]]));
}

export function sourceFromRow(row: Row): Source {
  return {
    id: str(row.id),
    uid: strOrNull(row.uid),
    name: str(row.name),
    provider: str(row.provider) as ProviderName,
    secrets: json<string[]>(row.secrets, []),
    options: json<SourceOptions>(row.options, {}),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
  };
}

/** Columns written for a new item, in the order of `itemParams`. */
export const ITEM_COLUMNS = [
  "id",
  "source_id",
  "status",
  "dedupe_key",
  "event_id",
  "duplicate_of",
  "event_type",
  "event_time",
  "ordering_key",
  "method",
  "path",
  "query",
  "headers",
  "body",
  "content_type",
  "body_kind",
  "next_attempt_at",
  "received_at",
  "updated_at",
] as const;

/**
 * Positional parameters for inserting a new item (positional binding is measurably cheaper than
 * named on the intake hot path). `headers` is the item's headers already serialised.
 */
export function itemParams(
  item: NewInboxItem,
  headers: string,
  status: InboxStatus,
  dedupeKey: string | null,
  duplicateOf: string | null,
  nextAttemptAt: number | null,
): unknown[] {
  return [
    item.id,
    item.sourceId,
    status,
    dedupeKey,
    item.eventId,
    duplicateOf,
    item.eventType,
    item.eventTime,
    item.orderingKey,
    item.method,
    item.path,
    item.query,
    headers,
    item.body,
    item.contentType,
    item.bodyKind,
    nextAttemptAt,
    item.receivedAt,
    item.receivedAt,
  ];
}

export function itemFromRow(row: Row): InboxItem {
  const body = row.body;
  return {
    id: str(row.id),
    sourceId: str(row.source_id),
    status: str(row.status) as InboxStatus,
    eventId: strOrNull(row.event_id),
    duplicateOf: strOrNull(row.duplicate_of),
    eventType: strOrNull(row.event_type),
    eventTime: numOrNull(row.event_time),
    orderingKey: strOrNull(row.ordering_key),
    method: str(row.method),
    path: str(row.path),
    query: str(row.query),
    headers: json<Record<string, string>>(row.headers, {}),
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : ""),
    contentType: strOrNull(row.content_type),
    bodyKind: str(row.body_kind) as BodyKind,
    attempts: Number(row.attempts),
    nextAttemptAt: numOrNull(row.next_attempt_at),
    lastError: strOrNull(row.last_error),
    // 1 from SQLite, true from PostgreSQL.
    stale: Number(row.stale) === 1,
    receivedAt: Number(row.received_at),
    processedAt: numOrNull(row.processed_at),
    updatedAt: Number(row.updated_at),
  };
}

/** A source's counters row and its per-status counts, as the stats the API shows. */
export function sourceStatsFromRows(source: Row | undefined, statusCounts: Row[]): SourceStats {
  const counts = Object.fromEntries(INBOX_STATUSES.map((s) => [s, 0])) as Record<InboxStatus, number>;
  for (const row of statusCounts) counts[String(row.status) as InboxStatus] = Number(row.n);
  return {
    verifyFailures: Number(source?.verify_failures ?? 0),
    lastVerifyFailureAt: numOrNull(source?.last_verify_failure_at),
    lastVerifyFailureCode: strOrNull(source?.last_verify_failure_code),
    counts,
  };
}

/**
 * A new item the processor took inside its insert transaction (the handoff): it is already
 * leased until `leaseUntil`; `mark` is its ordering key's newest-processed row, if any.
 */
export function handedOff(item: NewInboxItem, leaseUntil: number, mark: Row | undefined): ClaimedItem {
  // Spelled out in itemFromRow's order rather than spread from `item`: one shape for every item
  // the processor sees, handed off or read back, and no object-spread slow path per request (it
  // was 4-6 % of the event loop's busy time in the intake bench's CPU profile).
  return {
    item: {
      id: item.id,
      sourceId: item.sourceId,
      status: "processing",
      eventId: item.eventId,
      duplicateOf: null,
      eventType: item.eventType,
      eventTime: item.eventTime,
      orderingKey: item.orderingKey,
      method: item.method,
      path: item.path,
      query: item.query,
      headers: item.headers,
      body: item.body,
      contentType: item.contentType,
      bodyKind: item.bodyKind,
      attempts: 0,
      nextAttemptAt: leaseUntil,
      lastError: null,
      stale: false,
      receivedAt: item.receivedAt,
      processedAt: null,
      updatedAt: item.receivedAt,
    },
    newestProcessedTime: mark ? Number(mark.newest_event_time) : null,
  };
}

/**
 * What a claim may take of its due candidate rows (oldest first): none the caller holds, no more
 * per source than its room, at most one item per ordering key and none of a busy key, at most
 * `limit` in all. Of a key, only its first-arrived candidate (lowest id): a leased item is due at
 * its lease end, so after a crash or a lease end it sorts behind newer items of its key, and
 * taking one of those first had the older, acknowledged item judged stale and never handled.
 * Returns the picked ids with the newest processed event time of their keys.
 */
export function pickClaimable(candidates: readonly Row[], claim: InboxClaim): Map<string, number | null> {
  const busy = new Set(claim.busyKeys);
  const held = new Set(claim.heldIds);
  const room = new Map(Object.entries(claim.roomBySource));
  const firstOfKey = new Map<string, string>();
  for (const row of candidates) {
    if (row.ordering_key === null) continue;
    const key = keyOf(String(row.source_id), String(row.ordering_key));
    const first = firstOfKey.get(key);
    if (first === undefined || String(row.id) < first) firstOfKey.set(key, String(row.id));
  }
  const picked = new Map<string, number | null>();
  for (const row of candidates) {
    if (picked.size >= claim.limit) break;
    if (held.has(String(row.id))) continue;
    const sourceId = String(row.source_id);
    const left = room.get(sourceId);
    if (left !== undefined && left <= 0) continue;
    if (row.ordering_key !== null) {
      const key = keyOf(sourceId, String(row.ordering_key));
      if (busy.has(key) || firstOfKey.get(key) !== String(row.id)) continue;
      busy.add(key);
    }
    if (left !== undefined) room.set(sourceId, left - 1);
    picked.set(String(row.id), row.newest_event_time === null ? null : Number(row.newest_event_time));
  }
  return picked;
}
