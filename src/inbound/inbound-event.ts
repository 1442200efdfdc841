import type { ConsumeContext } from "./processor.js";
import type { InboundEvent, InboxItem, Source } from "./types.js";

/** The handler's view of an inbox item. Parsing is lazy: a handler that needs only bytes pays nothing. */
export function toInboundEvent(item: InboxItem, source: Source, ctx: ConsumeContext): InboundEvent {
  const body = item.body;
  return {
    id: item.id,
    eventId: item.eventId,
    eventType: item.eventType,
    source: { id: source.id, uid: source.uid, name: source.name, provider: source.provider },
    method: item.method,
    path: item.path,
    query: new URLSearchParams(item.query),
    headers: Object.freeze({ ...item.headers }),
    contentType: item.contentType,
    bodyKind: item.bodyKind,
    body,
    text: () => body.toString("utf8"),
    json: <T>() => JSON.parse(body.toString("utf8")) as T,
    form: () => new URLSearchParams(body.toString("utf8")),
    receivedAt: new Date(item.receivedAt),
    eventTime: item.eventTime === null ? null : new Date(item.eventTime),
    orderingKey: item.orderingKey,
    attempt: ctx.attempt,
    stale: ctx.stale,
  };
}
