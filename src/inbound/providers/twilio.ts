import { fail, header, mediaType, NO_SECRETS, OK, signedUrl, usableSecrets } from "./common.js";
import { hmacBase64, safeEqual, sha256Hex } from "./hmac.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Twilio: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, url + sorted POST params)>`, as
 * twilio-node's `validateRequest` / `validateRequestWithBody` compute it:
 *
 * - form-encoded bodies: the full URL followed by every parameter as `name + value`, names
 *   sorted; a repeated name contributes each distinct value, sorted;
 * - other bodies (JSON): the URL alone, which then carries `bodySHA256=<hex sha256(raw body)>`,
 *   checked against the body as well.
 *
 * Twilio's back end is inconsistent about the port and the query encoding, so, like twilio-node,
 * the URL is tried as given, without its port, with the scheme's standard port, and both of
 * those with the query re-encoded the way node's legacy `querystring` module does.
 * Nothing time-based is signed; de-dup on `I-Twilio-Idempotency-Token`.
 */

function withStandardPort(url: URL): string {
  if (url.port) return url.toString();
  const port = url.protocol === "https:" ? ":443" : ":80";
  const credentials =
    url.username || url.password ? `${url.username}${url.password ? `:${url.password}` : ""}@` : "";
  return `${url.protocol}//${credentials}${url.host}${port}${url.pathname}${url.search}${url.hash}`;
}

function withoutPort(url: URL): string {
  const copy = new URL(url.toString());
  copy.port = "";
  return copy.toString();
}

/**
 * node `querystring.stringify(querystring.parse(q))`: repeated names are grouped at the first
 * occurrence, and values are escaped like encodeURIComponent (the same unreserved set).
 */
function withLegacyQuery(url: string): string {
  const q = url.indexOf("?");
  if (q < 0 || q === url.length - 1) return url;
  const hash = url.indexOf("#", q);
  const query = url.slice(q + 1, hash < 0 ? undefined : hash);
  const grouped = new Map<string, string[]>();
  for (const [name, value] of new URLSearchParams(query)) {
    const values = grouped.get(name);
    if (values) values.push(value);
    else grouped.set(name, [value]);
  }
  const parts: string[] = [];
  for (const [name, values] of grouped) {
    for (const value of values) parts.push(`${encodeURIComponent(name)}=${encodeURIComponent(value)}`);
  }
  return `${url.slice(0, q)}?${parts.join("&")}`;
}

export function twilioUrlCandidates(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [url];
  }
  const portForms = [withoutPort(parsed), withStandardPort(parsed)];
  return [...new Set([url, ...portForms, ...portForms.map(withLegacyQuery)])];
}

/** `name + value` for every parameter, names sorted; repeated names give their distinct values sorted. */
export function twilioParamString(params: URLSearchParams): string {
  const grouped = new Map<string, Set<string>>();
  for (const [name, value] of params) {
    const values = grouped.get(name);
    if (values) values.add(value);
    else grouped.set(name, new Set([value]));
  }
  let out = "";
  for (const name of [...grouped.keys()].sort()) {
    for (const value of [...grouped.get(name)!].sort()) out += name + value;
  }
  return out;
}

function bodyHashParam(url: string): string | undefined {
  try {
    return new URL(url).searchParams.get("bodySHA256") ?? undefined;
  } catch {
    return undefined;
  }
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const given = header(req, "x-twilio-signature");
  if (given === undefined) return fail("missing_signature", "missing X-Twilio-Signature header");
  const url = signedUrl(req, opts);
  const bodyHash = bodyHashParam(url);
  const params =
    bodyHash === undefined && mediaType(req) === "application/x-www-form-urlencoded"
      ? twilioParamString(new URLSearchParams(req.rawBody.toString("utf8")))
      : "";
  const candidates = twilioUrlCandidates(url);
  let found = false;
  for (const secret of usable) {
    for (const candidate of candidates) {
      if (safeEqual(hmacBase64("sha1", secret, candidate, params), given)) found = true;
    }
  }
  if (!found) return fail("invalid_signature", "signature matches no secret");
  if (bodyHash !== undefined && !safeEqual(sha256Hex(req.rawBody), bodyHash.toLowerCase())) {
    return fail("invalid_signature", "body does not match the bodySHA256 the URL carries");
  }
  return OK;
}

export const twilio: ProviderVerifier = {
  name: "twilio",
  verify,
  eventId: (req) => header(req, "i-twilio-idempotency-token"),
};
