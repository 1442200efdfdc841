import { asId, asNumber, fail, header, jsonBody, NO_SECRETS, prop, usableSecrets } from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import { checkTimestamp, parseUnixSeconds, resolveTolerance } from "./timestamp.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=…][,v0=…]`, each v1 an HMAC-SHA256 of
 * `{t}.{raw body}` keyed by the whole secret string *including* `whsec_` (stripe-node does not
 * base64-decode it). Any v1 may match. As in stripe-node, only age is checked after the
 * signature matches: a timestamp in the future is accepted.
 */

function parseHeader(value: string): { timestamp?: string; v1: string[] } {
  const result: { timestamp?: string; v1: string[] } = { v1: [] };
  for (const item of value.split(",")) {
    const eq = item.indexOf("=");
    if (eq < 0) continue;
    const key = item.slice(0, eq).trim();
    const val = item.slice(eq + 1).trim();
    if (key === "t") result.timestamp = val;
    else if (key === "v1") result.v1.push(val.toLowerCase());
  }
  return result;
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const value = header(req, "stripe-signature");
  if (value === undefined) return fail("missing_signature", "missing Stripe-Signature header");
  const parsed = parseHeader(value);
  if (parsed.timestamp === undefined) return fail("missing_timestamp", "Stripe-Signature has no t=");
  const timestampSec = parseUnixSeconds(parsed.timestamp);
  if (timestampSec === undefined) return fail("missing_timestamp", "Stripe-Signature t= is not a unix time");
  if (parsed.v1.length === 0) return fail("missing_signature", "Stripe-Signature has no v1= signature");
  let found = false;
  for (const secret of usable) {
    const expected = hmacHex("sha256", secret, `${parsed.timestamp}.`, req.rawBody);
    for (const candidate of parsed.v1) if (safeEqual(expected, candidate)) found = true;
  }
  if (!found) return fail("invalid_signature", "no v1 signature matches any secret");
  return checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "past");
}

export const stripe: ProviderVerifier = {
  name: "stripe",
  verify,
  eventId: (req) => asId(prop(jsonBody(req), "id")),
  eventTimeMs: (req) => {
    const created = asNumber(prop(jsonBody(req), "created"));
    if (created !== undefined) return created * 1000;
    const signature = header(req, "stripe-signature");
    const t = signature === undefined ? undefined : parseUnixSeconds(parseHeader(signature).timestamp);
    return t === undefined ? undefined : t * 1000;
  },
};
