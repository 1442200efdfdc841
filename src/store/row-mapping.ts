import type { HandshakeMode } from "../core/config.js";
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
} from "./types.js";

/**
 * Column-level mapping between rows (snake_case) and records, shared by both backends. They differ
 * only in how a boolean and a JSON column look on the way in and out, which each backend's codec says.
 */

export type Row = Record<string, unknown>;

export interface ColumnCodec {
  bool(value: unknown): boolean;
  boolToDb(value: boolean): unknown;
  json<T>(value: unknown, fallback: T): T;
  jsonOrNull<T>(value: unknown): T | null;
}

const num = (value: unknown): number => Number(value);
const numOrNull = (value: unknown): number | null =>
  value === null || value === undefined ? null : Number(value);
const str = (value: unknown): string => String(value);
const strOrNull = (value: unknown): string | null =>
  value === null || value === undefined ? null : String(value);

export const toJson = (value: unknown): string | null =>
  value === null || value === undefined ? null : JSON.stringify(value);

/**
 * An endpoint's handshake state, which the handshake writes (markEndpointVerified,
 * scheduleHandshake). An edit of the endpoint (PATCH, headers, a secret rotation) writes it only
 * when the edit itself changes it (a new URL makes the endpoint pending again): written back from
 * the editor's earlier read, a handshake that succeeded meanwhile was undone, leaving the endpoint
 * pending with no handshake scheduled and its deliveries held for good.
 */
export const ENDPOINT_HANDSHAKE_COLUMNS = [
  "status",
  "challenge",
  "verified_at",
  "handshake_attempts",
  "handshake_next_at",
] as const;

/** The endpoint's row for an update: without its handshake state unless the update changes it. */
export function endpointUpdateRow(row: Row, changesHandshake: boolean): Row {
  if (changesHandshake) return row;
  const kept: Row = { ...row };
  for (const column of ENDPOINT_HANDSHAKE_COLUMNS) delete kept[column];
  return kept;
}

export function createRowMapping(codec: ColumnCodec) {
  function applicationFromRow(row: Row): Application {
    return {
      id: str(row.id),
      uid: strOrNull(row.uid),
      name: str(row.name),
      rateLimit: numOrNull(row.rate_limit),
      metadata: codec.json(row.metadata, {}),
      handshake: strOrNull(row.handshake) as HandshakeMode | null,
      createdAt: num(row.created_at),
      updatedAt: num(row.updated_at),
    };
  }

  function applicationToRow(app: Application): Row {
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

  function eventTypeFromRow(row: Row): EventType {
    return {
      name: str(row.name),
      description: str(row.description),
      schemas: codec.jsonOrNull(row.schemas),
      archived: codec.bool(row.archived),
      deprecated: codec.bool(row.deprecated),
      featureFlag: strOrNull(row.feature_flag),
      createdAt: num(row.created_at),
      updatedAt: num(row.updated_at),
    };
  }

  function eventTypeToRow(et: EventType): Row {
    return {
      name: et.name,
      description: et.description,
      schemas: toJson(et.schemas),
      archived: codec.boolToDb(et.archived),
      deprecated: codec.boolToDb(et.deprecated),
      feature_flag: et.featureFlag,
      created_at: et.createdAt,
      updated_at: et.updatedAt,
    };
  }

  function endpointFromRow(row: Row): Endpoint {
    return {
      id: str(row.id),
      appId: str(row.app_id),
      uid: strOrNull(row.uid),
      url: str(row.url),
      description: str(row.description),
      version: num(row.version),
      disabled: codec.bool(row.disabled),
      filterTypes: codec.jsonOrNull(row.filter_types),
      channels: codec.jsonOrNull(row.channels),
      rateLimit: numOrNull(row.rate_limit),
      metadata: codec.json(row.metadata, {}),
      headers: codec.json(row.headers, {}),
      secrets: codec.json<EndpointSecret[]>(row.secrets, []),
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

  function endpointToRow(ep: Endpoint): Row {
    return {
      id: ep.id,
      app_id: ep.appId,
      uid: ep.uid,
      url: ep.url,
      description: ep.description,
      version: ep.version,
      disabled: codec.boolToDb(ep.disabled),
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

  function messageFromRow(row: Row): Message {
    return {
      id: str(row.id),
      appId: str(row.app_id),
      eventId: strOrNull(row.event_id),
      eventType: str(row.event_type),
      payload: str(row.payload),
      channels: codec.jsonOrNull(row.channels),
      tags: codec.jsonOrNull(row.tags),
      createdAt: num(row.created_at),
    };
  }

  function messageToRow(msg: Message): Row {
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

  function deliveryFromRow(row: Row): Delivery {
    return {
      id: str(row.id),
      msgId: str(row.msg_id),
      endpointId: str(row.endpoint_id),
      appId: str(row.app_id),
      status: str(row.status) as DeliveryStatus,
      attempts: num(row.attempts),
      nextAttemptAt: num(row.next_attempt_at),
      manual: codec.bool(row.manual),
      lastError: strOrNull(row.last_error),
      createdAt: num(row.created_at),
      updatedAt: num(row.updated_at),
    };
  }

  function deliveryToRow(d: Delivery): Row {
    return {
      id: d.id,
      msg_id: d.msgId,
      endpoint_id: d.endpointId,
      app_id: d.appId,
      status: d.status,
      attempts: d.attempts,
      next_attempt_at: d.nextAttemptAt,
      manual: codec.boolToDb(d.manual),
      last_error: d.lastError,
      created_at: d.createdAt,
      updated_at: d.updatedAt,
    };
  }

  function attemptFromRow(row: Row): Attempt {
    return {
      id: str(row.id),
      msgId: str(row.msg_id),
      endpointId: str(row.endpoint_id),
      deliveryId: str(row.delivery_id),
      url: str(row.url),
      succeeded: codec.bool(row.succeeded),
      responseStatusCode: num(row.response_status_code),
      response: str(row.response),
      responseDurationMs: num(row.response_duration_ms),
      errorCode: strOrNull(row.error_code),
      triggerType: num(row.trigger_type) === 1 ? 1 : 0,
      createdAt: num(row.created_at),
    };
  }

  function attemptToRow(a: Attempt): Row {
    return {
      id: a.id,
      msg_id: a.msgId,
      endpoint_id: a.endpointId,
      delivery_id: a.deliveryId,
      url: a.url,
      succeeded: codec.boolToDb(a.succeeded),
      response_status_code: a.responseStatusCode,
      response: a.response,
      response_duration_ms: a.responseDurationMs,
      error_code: a.errorCode,
      trigger_type: a.triggerType,
      created_at: a.createdAt,
    };
  }

  function operationalEventFromRow(row: Row): OperationalEvent {
    return {
      id: str(row.id),
      type: str(row.type),
      appId: strOrNull(row.app_id),
      data: codec.json(row.data, {}),
      createdAt: num(row.created_at),
    };
  }

  return {
    applicationFromRow,
    applicationToRow,
    eventTypeFromRow,
    eventTypeToRow,
    endpointFromRow,
    endpointToRow,
    messageFromRow,
    messageToRow,
    deliveryFromRow,
    deliveryToRow,
    attemptFromRow,
    attemptToRow,
    operationalEventFromRow,
  };
}
