import type { Application, Attempt, Endpoint, EventType, Message, Page } from "../store/types.js";

/** Domain records → Svix wire shapes (camelCase, ISO dates, both field spellings the SDKs read). */

const iso = (ms: number): string => new Date(ms).toISOString();

export function applicationOut(app: Application) {
  return {
    id: app.id,
    uid: app.uid,
    name: app.name,
    metadata: app.metadata,
    throttleRate: app.rateLimit,
    rateLimit: app.rateLimit,
    handshake: app.handshake,
    createdAt: iso(app.createdAt),
    updatedAt: iso(app.updatedAt),
  };
}

export function eventTypeOut(et: EventType) {
  return {
    name: et.name,
    description: et.description,
    archived: et.archived,
    deprecated: et.deprecated,
    featureFlag: et.featureFlag,
    schemas: et.schemas,
    createdAt: iso(et.createdAt),
    updatedAt: iso(et.updatedAt),
  };
}

export function endpointOut(ep: Endpoint) {
  return {
    id: ep.id,
    uid: ep.uid,
    url: ep.url,
    description: ep.description,
    version: ep.version,
    disabled: ep.disabled,
    eventTypes: ep.filterTypes,
    filterTypes: ep.filterTypes,
    channels: ep.channels,
    throttleRate: ep.rateLimit,
    rateLimit: ep.rateLimit,
    metadata: ep.metadata,
    status: ep.status,
    verifiedAt: ep.verifiedAt === null ? null : iso(ep.verifiedAt),
    timeoutMs: ep.timeoutMs,
    method: ep.method,
    bodyFormat: ep.bodyFormat,
    headerStyle: ep.headerStyle,
    createdAt: iso(ep.createdAt),
    updatedAt: iso(ep.updatedAt),
  };
}

/** The payload is emitted as the stored JSON text, spliced in, so what the API shows is byte-for-byte what was signed. */
export function messageOutJson(msg: Message, withContent = true): string {
  const head = JSON.stringify({
    id: msg.id,
    eventType: msg.eventType,
    eventId: msg.eventId,
    channels: msg.channels,
    tags: msg.tags,
    timestamp: iso(msg.createdAt),
  });
  return `${head.slice(0, -1)},"payload":${withContent ? msg.payload : "{}"}}`;
}

export function messageOut(msg: Message, withContent = true): unknown {
  return JSON.parse(messageOutJson(msg, withContent));
}

const STATUS_TEXT = ["success", "pending", "fail", "sending"] as const;

export function attemptOut(a: Attempt) {
  const status = a.succeeded ? 0 : 2;
  return {
    id: a.id,
    msgId: a.msgId,
    endpointId: a.endpointId,
    url: a.url,
    response: a.response,
    responseStatusCode: a.responseStatusCode,
    responseDurationMs: a.responseDurationMs,
    status,
    statusText: STATUS_TEXT[status],
    triggerType: a.triggerType,
    errorCode: a.errorCode,
    timestamp: iso(a.createdAt),
  };
}

export function pageOut<T, U>(page: Page<T>, map: (item: T) => U) {
  return {
    data: page.data.map(map),
    iterator: page.iterator,
    prevIterator: page.prevIterator,
    done: page.done,
  };
}
