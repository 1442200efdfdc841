import type { IncomingMessage, ServerResponse } from "node:http";
import type { PigeonEngine } from "../../engine.js";
import type { Method, RouteSpec } from "../router.js";

/** True for the ingest URLs the server hands to the inbound listener before routing. */
export function isIngestPath(url: string | undefined): boolean {
  return url?.startsWith("/in/") === true;
}

/**
 * The ingest URL `/in/{source_id}` (id or uid). Providers call it, so it is not behind the admin
 * token; the source's own scheme authenticates each request. The server serves it on a fast path
 * (`createApiHandler` checks `isIngestPath` first) so the raw body reaches the verifier
 * untouched; these specs put it in the OpenAPI document and would serve it the same way.
 */
export function ingestRoutes(engine: PigeonEngine): RouteSpec[] {
  const methods: Method[] = ["POST", "PUT", "GET"];
  return methods.map((method) => ({
    method,
    path: "/in/{source_id}",
    operationId: `v1.ingest.${method.toLowerCase()}`,
    summary:
      "Pigeon: receive a webhook. Verified on the raw bytes, stored durably, then 200 (headers " +
      "pigeon-inbox-item and pigeon-inbox-status); handshakes are answered as the provider requires; " +
      "401 with a stable code when verification fails, 413 above the size limit",
    tag: "Inbound",
    auth: false,
    response: { status: 200 },
    handler: ({ req, res }: { req: IncomingMessage; res: ServerResponse }) => {
      engine.inbound.listener(req, res);
      return undefined;
    },
  }));
}
