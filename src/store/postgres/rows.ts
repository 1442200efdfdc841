import type { HandshakeMode } from "../../core/config.js";
import type {
  Application,
  Attempt,
  BodyFormat,
  Delivery,
  DeliveryStatus,
  Endpoint,
  EndpointSecret,
  EndpointStatus,
  EventType,
  HeaderStyle,
  HttpMethod,
  Message,
  OperationalEvent,
} from "../types.js";

/**
 * Column-level mapping between PostgreSQL rows and records. Rows arrive either from pg directly
 * (BIGINT as a string, JSON already parsed, BOOLEAN as boolean) or through `row_to_json` (BIGINT
 * as a number); both shapes map the same. JSON goes in as text (`json` columns), so what a caller
 * stored is what it reads back, key order included.
 */

export type Row = Record<string, unknown>;

const num = (value: unknown): number => Number(value);
const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
const str = (value: unknown): string => String(value);
const strOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);
const bool = (value: unknown): boolean => value === true;
const json = <T>(value: unknown, fallback: T): T =>
  value === null || value === undefined ? fallback : (value as T);
const jsonOrNull = <T>(value: unknown): T | null =>
  value === null || value === undefined ? null : (value as T);

/** JSON parameters are sent as text: pg would turn a JS array into a PostgreSQL array literal. */
export const toJson = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);

export function applicationFromRow(row: Row): Application {
  return {
    id: str(row.id),
    uid: strOrNull(row.uid),
    name: str(row.name),
    rateLimit: numOrNull(row.rate_limit),
    metadata: json(row.metadata, {}),
    handshake: strOrNull(row.handshake) as HandshakeMode | null,
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

export function applicationToRow(app: Application): Row {
  return {
    id: app.id,
    uid: app.uid,
    name: app.name,
    rate_limit: app.rateLimit,
    metadata: JSON.stringify(app.metadata),
    handshake: app.handshake,
    created_at: app.createdAt,
    updated_at: app.updatedAt,
  };
}

export function eventTypeFromRow(row: Row): EventType {
  return {
    name: str(row.name),
    description: str(row.description),
    schemas: jsonOrNull(row.schemas),
    archived: bool(row.archived),
    deprecated: bool(row.deprecated),
    featureFlag: strOrNull(row.feature_flag),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

export function eventTypeToRow(et: EventType): Row {
  return {
    name: et.name,
    description: et.description,
    schemas: toJson(et.schemas),
    archived: et.archived,
    deprecated: et.deprecated,
    feature_flag: et.featureFlag,
    created_at: et.createdAt,
    updated_at: et.updatedAt,
  };
}

export function endpointFromRow(row: Row): Endpoint {
  return {
    id: str(row.id),
    appId: str(row.app_id),
    uid: strOrNull(row.uid),
    url: str(row.url),
    description: str(row.description),
    version: num(row.version),
    disabled: bool(row.disabled),
    filterTypes: jsonOrNull(row.filter_types),
    channels: jsonOrNull(row.channels),
    rateLimit: numOrNull(row.rate_limit),
    metadata: json(row.metadata, {}),
    headers: json(row.headers, {}),
    secrets: json<EndpointSecret[]>(row.secrets, []),
    status: str(row.status) as EndpointStatus,
    challenge: strOrNull(row.challenge),
    verifiedAt: numOrNull(row.verified_at),
    handshakeAttempts: num(row.handshake_attempts),
    handshakeNextAt: numOrNull(row.handshake_next_at),
    timeoutMs: numOrNull(row.timeout_ms),
    method: str(row.method) as HttpMethod,
    bodyFormat: str(row.body_format) as BodyFormat,
    headerStyle: str(row.header_style) as HeaderStyle,
    failingSince: numOrNull(row.failing_since),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

export function endpointToRow(ep: Endpoint): Row {
  return {
    id: ep.id,
    app_id: ep.appId,
    uid: ep.uid,
    url: ep.url,
    description: ep.description,
    version: ep.version,
    disabled: ep.disabled,
    filter_types: toJson(ep.filterTypes),
    channels: toJson(ep.channels),
    rate_limit: ep.rateLimit,
    metadata: JSON.stringify(ep.metadata),
    headers: JSON.stringify(ep.headers),
    secrets: JSON.stringify(ep.secrets),
    status: ep.status,
    challenge: ep.challenge,
    verified_at: ep.verifiedAt,
    handshake_attempts: ep.handshakeAttempts,
    handshake_next_at: ep.handshakeNextAt,
    timeout_ms: ep.timeoutMs,
    method: ep.method,
    body_format: ep.bodyFormat,
    header_style: ep.headerStyle,
    failing_since: ep.failingSince,
    created_at: ep.createdAt,
    updated_at: ep.updatedAt,
  };
}

export function messageFromRow(row: Row): Message {
  return {
    id: str(row.id),
    appId: str(row.app_id),
    eventId: strOrNull(row.event_id),
    eventType: str(row.event_type),
    payload: str(row.payload),
    channels: jsonOrNull(row.channels),
    tags: jsonOrNull(row.tags),
    createdAt: num(row.created_at),
  };
}

export function messageToRow(msg: Message): Row {
  return {
    id: msg.id,
    app_id: msg.appId,
    event_id: msg.eventId,
    event_type: msg.eventType,
    payload: msg.payload,
    channels: toJson(msg.channels),
    tags: toJson(msg.tags),
    created_at: msg.createdAt,
  };
}

export function deliveryFromRow(row: Row): Delivery {
  return {
    id: str(row.id),
    msgId: str(row.msg_id),
    endpointId: str(row.endpoint_id),
    appId: str(row.app_id),
    status: str(row.status) as DeliveryStatus,
    attempts: num(row.attempts),
    nextAttemptAt: num(row.next_attempt_at),
    manual: bool(row.manual),
    lastError: strOrNull(row.last_error),
    createdAt: num(row.created_at),
    updatedAt: num(row.updated_at),
  };
}

export function deliveryToRow(d: Delivery): Row {
  return {
    id: d.id,
    msg_id: d.msgId,
    endpoint_id: d.endpointId,
    app_id: d.appId,
    status: d.status,
    attempts: d.attempts,
    next_attempt_at: d.nextAttemptAt,
    manual: d.manual,
    last_error: d.lastError,
    created_at: d.createdAt,
    updated_at: d.updatedAt,
  };
}

export function attemptFromRow(row: Row): Attempt {
  return {
    id: str(row.id),
    msgId: str(row.msg_id),
    endpointId: str(row.endpoint_id),
    deliveryId: str(row.delivery_id),
    url: str(row.url),
    succeeded: bool(row.succeeded),
    responseStatusCode: num(row.response_status_code),
    response: str(row.response),
    responseDurationMs: num(row.response_duration_ms),
    errorCode: strOrNull(row.error_code),
    triggerType: num(row.trigger_type) === 1 ? 1 : 0,
    createdAt: num(row.created_at),
  };
}

export function attemptToRow(a: Attempt): Row {
  return {
    id: a.id,
    msg_id: a.msgId,
    endpoint_id: a.endpointId,
    delivery_id: a.deliveryId,
    url: a.url,
    succeeded: a.succeeded,
    response_status_code: a.responseStatusCode,
    response: a.response,
    response_duration_ms: a.responseDurationMs,
    error_code: a.errorCode,
    trigger_type: a.triggerType,
    created_at: a.createdAt,
  };
}

export function operationalEventFromRow(row: Row): OperationalEvent {
  return {
    id: str(row.id),
    type: str(row.type),
    appId: strOrNull(row.app_id),
    data: json(row.data, {}),
    createdAt: num(row.created_at),
  };
}

/** `INSERT INTO t (a, b) VALUES ($1, $2)` and its parameters, for a row's keys. */
export function insertQuery(table: string, row: Row): { text: string; values: unknown[] } {
  const keys = Object.keys(row);
  return {
    text: `INSERT INTO ${table} (${keys.join(", ")}) VALUES (${keys.map((_, i) => `$${i + 1}`).join(", ")})`,
    values: Object.values(row),
  };
}

/** `UPDATE t SET a = $1, b = $2 WHERE key = $3` and its parameters, for a row's keys. */
export function updateQuery(table: string, row: Row, key: string): { text: string; values: unknown[] } {
  const keys = Object.keys(row).filter((k) => k !== key);
  return {
    text: `UPDATE ${table} SET ${keys.map((k, i) => `${k} = $${i + 1}`).join(", ")} WHERE ${key} = $${keys.length + 1}`,
    values: [...keys.map((k) => row[k]), row[key]],
  };
}
