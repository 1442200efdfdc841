import {
  asId,
  asNumber,
  fail,
  header,
  jsonBody,
  jsonResponse,
  NO_SECRETS,
  prop,
  rejectedHandshake,
  usableSecrets,
} from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import { checkTimestamp, parseUnixSecondsOrMillis, resolveTolerance } from "./timestamp.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderOptions,
  ProviderVerifier,
  VerifyResult,
} from "./types.js";

/**
 * Zoom: `x-zm-signature: v0=<hex HMAC-SHA256(secret token, "v0:{ts}:{raw body}")>` with
 * `x-zm-request-timestamp`. Zoom's docs say to reject stale requests; future ones are not
 * rejected (as for Slack, which uses the same construction). The raw body is used, not a
 * re-serialisation as in Zoom's sample.
 *
 * Handshake `endpoint.url_validation`: 200 `{"plainToken","encryptedToken": hex HMAC(secret,
 * plainToken)}`. It is answered only after the request's own signature verifies, and with the
 * secret that verified it: answering unsigned requests would be an HMAC oracle, since a
 * plainToken of `v0:{ts}:{body}` yields a valid signature for any body.
 */

function matchingSecret(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number) {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return { result: NO_SECRETS };
  const signature = header(req, "x-zm-signature");
  if (signature === undefined) return { result: fail("missing_signature", "missing x-zm-signature header") };
  const timestamp = header(req, "x-zm-request-timestamp");
  if (timestamp === undefined) {
    return { result: fail("missing_timestamp", "missing x-zm-request-timestamp header") };
  }
  const timestampSec = parseUnixSecondsOrMillis(timestamp);
  if (timestampSec === undefined) {
    return { result: fail("missing_timestamp", "x-zm-request-timestamp is not a unix time") };
  }
  if (!signature.startsWith("v0=")) {
    return { result: fail("invalid_signature", "signature does not start with v0=") };
  }
  const given = signature.slice(3).toLowerCase();
  let secret: string | undefined;
  for (const candidate of usable) {
    if (safeEqual(hmacHex("sha256", candidate, `v0:${timestamp}:`, req.rawBody), given)) secret ??= candidate;
  }
  if (secret === undefined) return { result: fail("invalid_signature", "signature matches no secret") };
  return { result: checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "past"), secret };
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  return matchingSecret(req, secrets, opts, nowSec).result;
}

function handshake(
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions,
  nowSec: number = Math.floor(Date.now() / 1000),
): HandshakeResponse | null {
  if (req.method !== "POST") return null;
  const body = jsonBody(req);
  if (prop(body, "event") !== "endpoint.url_validation") return null;
  const plainToken = prop(prop(body, "payload"), "plainToken");
  if (typeof plainToken !== "string") return null;
  const { result, secret } = matchingSecret(req, secrets, opts, nowSec);
  if (!result.ok || secret === undefined) return rejectedHandshake(result);
  return jsonResponse(200, { plainToken, encryptedToken: hmacHex("sha256", secret, plainToken) });
}

/**
 * Zoom events carry no id: `{event}:{event_ts}` plus the object's uuid/id when present,
 * falling back to the `x-zm-trackingid` header.
 */
function eventId(req: InboundRequest): string | undefined {
  const body = jsonBody(req);
  const event = asId(prop(body, "event"));
  const ts = asId(prop(body, "event_ts"));
  if (event !== undefined && ts !== undefined) {
    const object = prop(prop(body, "payload"), "object");
    const objectId = asId(prop(object, "uuid")) ?? asId(prop(object, "id"));
    return objectId === undefined ? `${event}:${ts}` : `${event}:${ts}:${objectId}`;
  }
  return header(req, "x-zm-trackingid");
}

export const zoom: ProviderVerifier = {
  name: "zoom",
  verify,
  handshake,
  eventId,
  /** `event_ts` is already in milliseconds. */
  eventTimeMs: (req) => asNumber(prop(jsonBody(req), "event_ts")),
};
