import type { Clock } from "../core/clock.js";
import { errors } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { Store } from "../store/store.js";
import type { Application, Message } from "../store/types.js";
import { planDeliveries } from "./fanout.js";
import { issuesFromAjvLike, validatePayloadAgainstEventType } from "./payload-schema.js";

export interface PublishInput {
  eventType: string;
  payload: Record<string, unknown>;
  eventId?: string | null | undefined;
  channels?: string[] | null | undefined;
  tags?: string[] | null | undefined;
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

  async publish(app: Application, input: PublishInput): Promise<Message> {
    const eventType = await this.store.getEventType(input.eventType);
    if (eventType) {
      const problems = validatePayloadAgainstEventType(eventType, input.payload);
      if (problems) throw errors.validation(issuesFromAjvLike(problems));
    }
    const now = this.clock.now();
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
    const endpoints = await this.store.listActiveEndpoints(app.id);
    const deliveries = planDeliveries(message, endpoints, now);
    await this.store.createMessage(message, deliveries);
    if (deliveries.some((d) => d.status === "pending")) this.onEnqueued();
    return message;
  }
}
