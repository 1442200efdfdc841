import {
  asId,
  asNumber,
  fail,
  formBody,
  header,
  jsonBody,
  jsonResponse,
  mediaType,
  NO_SECRETS,
  prop,
  rejectedHandshake,
  usableSecrets,
} from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import { checkTimestamp, parseUnixSeconds, resolveTolerance } from "./timestamp.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderOptions,
  ProviderVerifier,
  VerifyResult,
} from "./types.js";

/**
 * Slack: `X-Slack-Signature: v0=<hex HMAC-SHA256(signing secret, "v0:{ts}:{raw body}")>` with
 * `X-Slack-Request-Timestamp`. Like Bolt, only stale timestamps are rejected.
 *
 * Handshakes: `url_verification` (signed JSON; verified, then 200 `{"challenge":…}` as Bolt
 * answers) and `ssl_check=1` (form-encoded, unsigned; 200 with an empty body, so nothing the
 * request carried is echoed back).
 */

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const signature = header(req, "x-slack-signature");
  if (signature === undefined) return fail("missing_signature", "missing X-Slack-Signature header");
  const timestamp = header(req, "x-slack-request-timestamp");
  if (timestamp === undefined) return fail("missing_timestamp", "missing X-Slack-Request-Timestamp header");
  const timestampSec = parseUnixSeconds(timestamp);
  if (timestampSec === undefined)
    return fail("missing_timestamp", "X-Slack-Request-Timestamp is not a unix time");
  if (!signature.startsWith("v0=")) return fail("invalid_signature", "signature does not start with v0=");
  const given = signature.slice(3).toLowerCase();
  let found = false;
  for (const secret of usable) {
    if (safeEqual(hmacHex("sha256", secret, `v0:${timestamp}:`, req.rawBody), given)) found = true;
  }
  if (!found) return fail("invalid_signature", "signature matches no secret");
  return checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "past");
}

function handshake(
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions,
  nowSec: number = Math.floor(Date.now() / 1000),
): HandshakeResponse | null {
  if (req.method !== "POST") return null;
  if (mediaType(req) === "application/x-www-form-urlencoded") {
    const form = formBody(req);
    if (form.get("ssl_check")) return { status: 200, headers: {}, body: "" };
    return null;
  }
  const body = jsonBody(req);
  if (prop(body, "type") !== "url_verification") return null;
  const challenge = prop(body, "challenge");
  if (typeof challenge !== "string") return null;
  const result = verify(req, secrets, opts, nowSec);
  if (!result.ok) return rejectedHandshake(result);
  return jsonResponse(200, { challenge });
}

export const slack: ProviderVerifier = {
  name: "slack",
  verify,
  handshake,
  /** Events API `event_id`; for slash commands and interactivity (form bodies) the `trigger_id`. */
  eventId(req) {
    const id = asId(prop(jsonBody(req), "event_id"));
    if (id !== undefined) return id;
    if (mediaType(req) !== "application/x-www-form-urlencoded") return undefined;
    const form = formBody(req);
    const trigger = form.get("trigger_id");
    if (trigger) return trigger;
    const payload = form.get("payload");
    if (payload === null) return undefined;
    try {
      return asId(prop(JSON.parse(payload), "trigger_id"));
    } catch {
      return undefined;
    }
  },
  eventTimeMs(req) {
    const time = asNumber(prop(jsonBody(req), "event_time"));
    return time === undefined ? undefined : time * 1000;
  },
};
