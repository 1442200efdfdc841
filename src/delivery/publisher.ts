import type { Clock } from "../core/clock.js";
import { errors } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { PublishContext, Store } from "../store/store.js";
import type { Application, Delivery, Endpoint, EventType, Message } from "../store/types.js";
import { planDeliveries } from "./fanout.js";
import { issuesFromAjvLike, validatePayloadAgainstEventType } from "./payload-schema.js";

export interface PublishInput {
  eventType: string;
  payload: Record<string, unknown>;
  eventId?: string | null | undefined;
  channels?: string[] | null | undefined;
  tags?: string[] | null | undefined;
  /**
   * When to send it (RFC 3339), best effort: its deliveries come due then, not at once. A time in
   * the past means now. Svix's MessageIn field.
   */
  deliverAt?: string | null | undefined;
}

/**
 * Records a message and one delivery per subscribed endpoint in a single transaction, then wakes
 * the dispatcher. When `publish` resolves, the message is on disk: nothing is lost after that.
 */
export class Publisher {
  constructor(
    private readonly store: Store,
    private readonly clock: Clock,
    private readonly onEnqueued: () => void,
  ) {}

  /**
   * `loaded`: the event type and endpoints already read for this application and event type
   * (Store.loadPublishContext, as the API does in one round trip); otherwise they are read here.
   */
  async publish(
    app: Application,
    input: PublishInput,
    loaded?: Pick<PublishContext, "eventType" | "endpoints">,
  ): Promise<Message> {
    const eventType = loaded ? loaded.eventType : await this.store.getEventType(input.eventType);
    const endpoints = loaded ? loaded.endpoints : await this.store.listActiveEndpoints(app.id);
    const { message, deliveries } = prepareMessage(app, input, eventType, endpoints, this.clock.now());
    await this.store.createMessage(message, deliveries);
    if (deliveries.some((d) => d.status === "pending")) this.onEnqueued();
    return message;
  }
}

/**
 * Validates a message against its event type's schema and plans its deliveries. Pure, so the
 * async publisher and the synchronous outbox (inside an application's transaction) share it.
 */
export function prepareMessage(
  app: Application,
  input: PublishInput,
  eventType: EventType | undefined,
  endpoints: Endpoint[],
  now: number,
): { message: Message; deliveries: Delivery[] } {
  if (eventType) {
    const problems = validatePayloadAgainstEventType(eventType, input.payload);
    if (problems) throw errors.validation(issuesFromAjvLike(problems));
  }
  const message: Message = {
    id: newId("msg", now),
    appId: app.id,
    eventId: input.eventId ?? null,
    eventType: input.eventType,
    payload: JSON.stringify(input.payload),
    channels: input.channels ?? null,
    tags: input.tags ?? null,
    createdAt: now,
  };
  const deliverAt = input.deliverAt ? Date.parse(input.deliverAt) : Number.NaN;
  const dueAt = Number.isNaN(deliverAt) ? now : Math.max(now, deliverAt);
  return { message, deliveries: planDeliveries(message, endpoints, now, dueAt) };
}
