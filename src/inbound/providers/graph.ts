import { textResponse } from "./common.js";
import type { HandshakeResponse, InboundRequest } from "./types.js";

/**
 * Microsoft Graph subscription validation, which any source may receive: a POST (or GET) to
 * `{notificationUrl}?validationToken=<url-encoded>` must be answered within 10 s with 200,
 * `Content-Type: text/plain` and the decoded token as the body. Graph signs nothing; its
 * notifications are authenticated by the `clientState` echoed in each item.
 */
export function answerGenericHandshake(req: InboundRequest): HandshakeResponse | null {
  if (req.method !== "POST" && req.method !== "GET") return null;
  const token = req.query.get("validationToken");
  if (token === null) return null;
  return textResponse(200, token);
}
