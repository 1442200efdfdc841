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

/** Row of a new item; `status`, `dedupe_key` and `duplicate_of` are set by the insert. */
export function newItemToRow(item: NewInboxItem): Row {
  return {
    id: item.id,
    source_id: item.sourceId,
    event_id: item.eventId,
    event_type: item.eventType,
    event_time: item.eventTime,
    ordering_key: item.orderingKey,
    method: item.method,
    path: item.path,
    query: item.query,
    headers: JSON.stringify(item.headers),
    body: item.body,
    content_type: item.contentType,
    body_kind: item.bodyKind,
    received_at: item.receivedAt,
    updated_at: item.receivedAt,
  };
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
