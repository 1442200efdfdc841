import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * Standard Webhooks v1 (HMAC-SHA256) signing and verification.
 * Signed content is `{msgId}.{timestampSec}.{body}`; the header value is a space-separated list of
 * `v1,<base64 mac>` so that, during a secret rotation, every still-valid key signs and a receiver
 * that knows any one of them accepts the message.
 */

export type HeaderStyle = "webhook" | "svix";

export interface SignatureHeaderValues {
  id: string;
  timestamp: string;
  signature: string;
}

export type VerifyResult =
  | { ok: true }
  | { ok: false; code: "missing_headers" | "timestamp_out_of_tolerance" | "invalid_signature" };

export interface VerifyOptions {
  /** Allowed clock skew either way, in seconds. Default 300 (the spec's and the libraries' value). */
  toleranceSec?: number;
  /** Injected "now" for tests and replays. Default: the wall clock. */
  nowSec?: number;
}

const DEFAULT_TOLERANCE_SEC = 5 * 60;
const SIGNATURE_VERSION = "v1";
const INTEGER = /^\d+$/;

function mac(key: Buffer, prefix: string, body: Buffer | string): string {
  // Two update() calls avoid copying a possibly large body into one concatenated string.
  return createHmac("sha256", key).update(prefix).update(body).digest("base64");
}

export function signPayload(
  keys: Buffer[],
  msgId: string,
  timestampSec: number,
  body: Buffer | string,
): string {
  const prefix = `${msgId}.${timestampSec}.`;
  let header = "";
  for (const key of keys) {
    header += `${header === "" ? "" : " "}${SIGNATURE_VERSION},${mac(key, prefix, body)}`;
  }
  return header;
}

export function verifyPayload(
  keys: Buffer[],
  headers: SignatureHeaderValues,
  body: Buffer | string,
  opts: VerifyOptions = {},
): VerifyResult {
  if (!headers.id || !headers.timestamp || !headers.signature) return { ok: false, code: "missing_headers" };
  // An unparseable timestamp is as useless as an absent one.
  if (!INTEGER.test(headers.timestamp)) return { ok: false, code: "missing_headers" };

  const timestamp = Number(headers.timestamp);
  const now = opts.nowSec ?? Math.floor(Date.now() / 1000);
  const tolerance = opts.toleranceSec ?? DEFAULT_TOLERANCE_SEC;
  if (Math.abs(now - timestamp) > tolerance) return { ok: false, code: "timestamp_out_of_tolerance" };

  // Sign with the header's own text so "0123" and "123" do not silently verify as the same message.
  const prefix = `${headers.id}.${headers.timestamp}.`;
  const expected = keys.map((key) => Buffer.from(mac(key, prefix, body)));
  for (const part of headers.signature.split(" ")) {
    const comma = part.indexOf(",");
    if (comma === -1 || part.slice(0, comma) !== SIGNATURE_VERSION) continue;
    const given = Buffer.from(part.slice(comma + 1));
    for (const want of expected) {
      // timingSafeEqual requires equal lengths; a length mismatch reveals nothing secret.
      if (given.length === want.length && timingSafeEqual(given, want)) return { ok: true };
    }
  }
  return { ok: false, code: "invalid_signature" };
}

export function buildSignatureHeaders(opts: {
  msgId: string;
  timestampSec: number;
  signature: string;
  headerStyle: HeaderStyle;
}): Record<string, string> {
  const p = opts.headerStyle === "svix" ? "svix" : "webhook";
  return {
    [`${p}-id`]: opts.msgId,
    [`${p}-timestamp`]: String(opts.timestampSec),
    [`${p}-signature`]: opts.signature,
  };
}
