import type { ProviderName } from "../providers/types.js";
import type { BodyKind, InboxItem, InboxStatus, NewInboxItem, Source, SourceOptions } from "../types.js";

/** Column mapping between SQLite rows (snake_case, JSON as text, 0/1 booleans) and inbound records. */

export type Row = Record<string, unknown>;

const str = (value: unknown): string => String(value);
const strOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);
const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);

export function sourceToRow(source: Source): Row {
  return {
    id: source.id,
    uid: source.uid,
    name: source.name,
    provider: source.provider,
    secrets: JSON.stringify(source.secrets),
    options: JSON.stringify(source.options),
    created_at: source.createdAt,
    updated_at: source.updatedAt,
  };
}

export function sourceFromRow(row: Row): Source {
  return {
    id: str(row.id),
    uid: strOrNull(row.uid),
    name: str(row.name),
    provider: str(row.provider) as ProviderName,
    secrets: JSON.parse(str(row.secrets)) as string[],
    options: JSON.parse(str(row.options)) as SourceOptions,
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
    headers: JSON.parse(str(row.headers)) as Record<string, string>,
    body: Buffer.isBuffer(body) ? body : Buffer.from(typeof body === "string" ? body : ""),
    contentType: strOrNull(row.content_type),
    bodyKind: str(row.body_kind) as BodyKind,
    attempts: Number(row.attempts),
    nextAttemptAt: numOrNull(row.next_attempt_at),
    lastError: strOrNull(row.last_error),
    stale: Number(row.stale) === 1,
    receivedAt: Number(row.received_at),
    processedAt: numOrNull(row.processed_at),
    updatedAt: Number(row.updated_at),
  };
}
