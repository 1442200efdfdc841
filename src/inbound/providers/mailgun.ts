import {
  asId,
  asNumber,
  fail,
  header,
  jsonBody,
  mediaType,
  NO_SECRETS,
  prop,
  usableSecrets,
} from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import { checkTimestamp, parseUnixSeconds, resolveTolerance } from "./timestamp.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Mailgun: the signature travels in the body, `signature: {timestamp, token, signature}` in
 * JSON webhooks (plus `parent-signature` for subaccounts), or `timestamp`/`token`/`signature`
 * fields in form-encoded and multipart posts (legacy webhooks, routes). `signature` is the hex
 * HMAC-SHA256 of `timestamp + token` under the webhook signing key. The body itself is NOT
 * signed: a valid triple can be lifted onto any body, so freshness matters more than usual;
 * stale timestamps are rejected and the token is part of the de-dup key when the body has no
 * event id.
 */

interface SignatureTriple {
  timestamp: string;
  token: string;
  signature: string;
}

function triple(value: unknown): SignatureTriple | undefined {
  const timestamp = asId(prop(value, "timestamp"));
  const token = asId(prop(value, "token"));
  const signature = asId(prop(value, "signature"));
  if (timestamp === undefined || token === undefined || signature === undefined) return undefined;
  return { timestamp, token, signature };
}

/** Plain text fields of a multipart/form-data body (enough for timestamp/token/signature). */
function multipartFields(req: InboundRequest): Map<string, string> {
  const fields = new Map<string, string>();
  const match = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(header(req, "content-type") ?? "");
  const boundary = match?.[1] ?? match?.[2];
  if (!boundary) return fields;
  const text = req.rawBody.toString("latin1");
  for (const part of text.split(`--${boundary}`)) {
    const split = part.indexOf("\r\n\r\n");
    if (split < 0) continue;
    const head = part.slice(0, split);
    const name = /content-disposition:[^\r\n]*\bname="([^"]*)"/i.exec(head)?.[1];
    if (name === undefined || /\bfilename=/i.test(head)) continue;
    let value = part.slice(split + 4);
    if (value.endsWith("\r\n")) value = value.slice(0, -2);
    if (!fields.has(name)) fields.set(name, Buffer.from(value, "latin1").toString("utf8"));
  }
  return fields;
}

function triples(req: InboundRequest): SignatureTriple[] {
  const type = mediaType(req);
  let fields: { get(name: string): string | null | undefined } | undefined;
  if (type === "application/x-www-form-urlencoded")
    fields = new URLSearchParams(req.rawBody.toString("utf8"));
  else if (type === "multipart/form-data") fields = multipartFields(req);
  if (fields) {
    const found = triple({
      timestamp: fields.get("timestamp") ?? undefined,
      token: fields.get("token") ?? undefined,
      signature: fields.get("signature") ?? undefined,
    });
    return found ? [found] : [];
  }
  const body = jsonBody(req);
  return [triple(prop(body, "signature")), triple(prop(body, "parent-signature"))].filter(
    (t): t is SignatureTriple => t !== undefined,
  );
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const candidates = triples(req);
  if (candidates.length === 0) return fail("missing_signature", "body carries no Mailgun signature");
  let matched: SignatureTriple | undefined;
  for (const secret of usable) {
    for (const candidate of candidates) {
      const expected = hmacHex("sha256", secret, candidate.timestamp, candidate.token);
      if (safeEqual(expected, candidate.signature.toLowerCase())) matched ??= candidate;
    }
  }
  if (matched === undefined) return fail("invalid_signature", "signature matches no signing key");
  const timestampSec = parseUnixSeconds(matched.timestamp);
  if (timestampSec === undefined) return fail("missing_timestamp", "signature timestamp is not a unix time");
  return checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "past");
}

export const mailgun: ProviderVerifier = {
  name: "mailgun",
  verify,
  eventId(req) {
    const id = asId(prop(prop(jsonBody(req), "event-data"), "id"));
    if (id !== undefined) return id;
    const token = triples(req)[0]?.token;
    return token === undefined ? undefined : `token:${token}`;
  },
  eventTimeMs(req) {
    const t = asNumber(prop(prop(jsonBody(req), "event-data"), "timestamp"));
    return t === undefined ? undefined : Math.round(t * 1000);
  },
};
