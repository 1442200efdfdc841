import { PigeonError } from "../core/errors.js";
import type { Publisher } from "../delivery/publisher.js";
import type { Store } from "../store/store.js";
import { NonRetryableError } from "./retry.js";
import type { ForwardOptions, InboxItem, Source } from "./types.js";

/**
 * The payload a forwarded item is published with. A JSON object body is passed as it is, so
 * destinations see what the provider sent; anything else is wrapped, because a Pigeon message
 * payload is a JSON object.
 */
export function forwardPayload(item: InboxItem): Record<string, unknown> {
  const text = item.body.toString("utf8");
  if (item.bodyKind === "json" || item.bodyKind === "other") {
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed))
        return parsed as Record<string, unknown>;
      return { data: parsed };
    } catch {
      // not JSON after all: wrapped below
    }
  }
  if (item.bodyKind === "form") return { form: Object.fromEntries(new URLSearchParams(text)) };
  return { body: text, contentType: item.contentType };
}

/** Event type names the API accepts: letters, digits, `-_.`. */
function eventTypeName(raw: string): string {
  return raw.replace(/[^a-zA-Z0-9\-_.]/g, "_").slice(0, 256);
}

/**
 * Gateway mode: each item becomes a message of a Pigeon application, so destinations get it
 * signed, retried and recorded by the delivery engine. The inbox item id is the message's
 * `eventId`: if we crash after publishing but before recording the item processed, the retry's
 * publish is refused as a duplicate and counts as done, so an item is published once.
 */
export class Forwarder {
  constructor(
    private readonly store: Store,
    private readonly publisher: Publisher,
  ) {}

  async forward(item: InboxItem, source: Source, forward: ForwardOptions): Promise<void> {
    const app = await this.store.getApplication(forward.appId);
    if (!app) throw new Error(`forward: application '${forward.appId}' does not exist`);
    const eventType = eventTypeName(forward.eventType ?? item.eventType ?? `${source.provider}.webhook`);
    try {
      await this.publisher.publish(app, { eventType, payload: forwardPayload(item), eventId: item.id });
    } catch (error) {
      if (error instanceof PigeonError && error.code === "duplicate_event_id") return;
      if (error instanceof PigeonError && error.status === 422)
        throw new NonRetryableError(
          `forward: the payload does not match event type '${eventType}': ${error.message}`,
        );
      throw error;
    }
  }
}
