import { newId } from "../core/ids.js";
import type { Delivery, Endpoint, Message } from "../store/types.js";

/** `employee.*` matches `employee.created`; `*` alone matches everything; otherwise exact. */
export function eventTypeMatches(pattern: string, eventType: string): boolean {
  if (!pattern.includes("*")) return pattern === eventType;
  const escaped = pattern.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*");
  return new RegExp(`^${escaped}$`).test(eventType);
}

/**
 * Svix semantics: an endpoint with a type filter gets only matching types; an endpoint with
 * channels gets only messages sharing one of them; disabled endpoints get nothing.
 */
export function endpointWants(endpoint: Endpoint, message: Pick<Message, "eventType" | "channels">): boolean {
  if (endpoint.disabled) return false;
  if (endpoint.filterTypes && endpoint.filterTypes.length > 0) {
    if (!endpoint.filterTypes.some((pattern) => eventTypeMatches(pattern, message.eventType))) return false;
  }
  if (endpoint.channels && endpoint.channels.length > 0) {
    const channels = message.channels ?? [];
    if (!endpoint.channels.some((c) => channels.includes(c))) return false;
  }
  return true;
}

/**
 * One delivery per endpoint that wants the message. An endpoint still waiting for its
 * registration handshake gets a `held` delivery: kept, not sent, released when it verifies.
 * The status here is only the plan, from the endpoints as read before publishing: the store
 * decides held or pending again from each endpoint as it is at the insert (Store.createMessage),
 * since the handshake may verify the endpoint (or a URL change make it pending) in between, and a
 * held row written after the release would never be released. `dueAt`: when the deliveries first
 * come due (the message's deliverAt, else now).
 */
export function planDeliveries(
  message: Message,
  endpoints: Endpoint[],
  now: number,
  dueAt = now,
): Delivery[] {
  return endpoints
    .filter((endpoint) => endpointWants(endpoint, message))
    .map((endpoint) => ({
      id: newId("dlv", now),
      msgId: message.id,
      endpointId: endpoint.id,
      appId: message.appId,
      status: endpoint.status === "pending" ? "held" : "pending",
      attempts: 0,
      // Not before the message's deliverAt, when it has one.
      nextAttemptAt: dueAt,
      manual: false,
      lastError: null,
      createdAt: now,
      updatedAt: now,
    }));
}
