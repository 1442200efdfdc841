import type { InboundRequest, ProviderName } from "./providers/types.js";

/**
 * The event type each provider names, used to route items to `on(eventType, …)` handlers and as
 * the message type in gateway mode. Providers that carry none (Twilio, Dropbox, Basic, …) give
 * undefined; a source can point at its own field instead (`options.eventType`).
 */

function header(req: InboundRequest, name: string): string | undefined {
  const value = req.headers[name]?.trim();
  return value ? value : undefined;
}

function record(value: unknown): Record<string, unknown> | undefined {
  return value !== null && typeof value === "object" && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

function str(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

function own(value: unknown, key: string): unknown {
  const r = record(value);
  return r && Object.hasOwn(r, key) ? r[key] : undefined;
}

/** `json` is the parsed body (undefined when it is not JSON); parsed once by the caller. */
export function providerEventType(
  provider: ProviderName,
  req: InboundRequest,
  json: unknown,
): string | undefined {
  switch (provider) {
    case "github":
      return header(req, "x-github-event");
    case "shopify":
      return header(req, "x-shopify-topic") ?? header(req, "shopify-topic");
    case "slack":
      // Events API wraps the event: `{"type":"event_callback","event":{"type":"app_mention"}}`.
      return str(own(own(json, "event"), "type")) ?? str(own(json, "type"));
    case "zoom":
      return str(own(json, "event"));
    case "meta":
      return str(own(json, "object"));
    case "mailgun":
      return str(own(own(json, "event-data"), "event"));
    case "sendgrid":
      return Array.isArray(json) ? str(own(json[0], "event")) : undefined;
    case "x": {
      const body = record(json);
      return body ? Object.keys(body).find((key) => key.endsWith("_events")) : undefined;
    }
    case "standard-webhooks":
    case "stripe":
    case "square":
    case "generic-hmac":
    case "basic":
    case "api-key":
    case "none":
      // Standard Webhooks, Stripe and Square put it in `type`; for the generic schemes it is
      // the common convention, and a source can say otherwise.
      return str(own(json, "type"));
    default:
      return undefined;
  }
}
