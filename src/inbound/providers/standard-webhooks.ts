import { createPublicKey, type KeyObject, verify as verifySignature } from "node:crypto";
import { boundedMemo } from "../../core/bounded-memo.js";
import {
  fail,
  firstHeader,
  jsonBody,
  jsonResponse,
  NO_SECRETS,
  prop,
  rejectedHandshake,
  usableSecrets,
} from "./common.js";
import { hmacBase64, safeEqual } from "./hmac.js";
import { checkTimestamp, parseUnixSeconds, resolveTolerance } from "./timestamp.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderOptions,
  ProviderVerifier,
  VerifyResult,
} from "./types.js";

/**
 * Standard Webhooks v1 (also Svix and Pigeon's own deliveries).
 *
 * Signed content: `{id}.{timestamp}.{raw body}`. `webhook-signature` is a space-separated list of
 * `v1,<base64 HMAC-SHA256>` (secret `whsec_<base64 key>`) and `v1a,<base64 ed25519>` (public key
 * `whpk_<base64>`). Svix sends `svix-*` names; each header falls back to the other family.
 * The timestamp must be within the tolerance in both directions, as the spec and the reference
 * library require.
 */

const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

type DecodedSecret = { kind: "hmac"; key: Buffer } | { kind: "ed25519"; key: KeyObject };

/**
 * Decoded secrets by their text: a source's secrets are few and change rarely, and decoding (an
 * Ed25519 key object above all) costs more than the HMAC it feeds.
 */
const decodeSecret = boundedMemo(decodeSecretText);

function decodeSecretText(secret: string): DecodedSecret | undefined {
  try {
    if (secret.startsWith("whpk_")) {
      const raw = Buffer.from(secret.slice(5), "base64");
      if (raw.length !== 32) return undefined;
      const key = createPublicKey({
        key: Buffer.concat([ED25519_SPKI_PREFIX, raw]),
        format: "der",
        type: "spki",
      });
      return { kind: "ed25519", key };
    }
    // Like the reference library, an unprefixed secret is still base64.
    const key = Buffer.from(secret.startsWith("whsec_") ? secret.slice(6) : secret, "base64");
    return key.length === 0 ? undefined : { kind: "hmac", key };
  } catch {
    return undefined;
  }
}

interface ParsedHeaders {
  id: string;
  timestamp: string;
  timestampSec: number;
  signatures: { version: string; value: string }[];
}

function parseHeaders(req: InboundRequest): ParsedHeaders | VerifyResult {
  const signature = firstHeader(req, "webhook-signature", "svix-signature");
  if (signature === undefined) return fail("missing_signature", "missing webhook-signature header");
  const id = firstHeader(req, "webhook-id", "svix-id");
  if (id === undefined) return fail("missing_signature", "missing webhook-id header");
  const timestamp = firstHeader(req, "webhook-timestamp", "svix-timestamp");
  if (timestamp === undefined) return fail("missing_timestamp", "missing webhook-timestamp header");
  const timestampSec = parseUnixSeconds(timestamp);
  if (timestampSec === undefined) return fail("missing_timestamp", "webhook-timestamp is not a unix time");
  const signatures: { version: string; value: string }[] = [];
  for (const item of signature.split(" ")) {
    const comma = item.indexOf(",");
    if (comma <= 0) continue;
    signatures.push({ version: item.slice(0, comma), value: item.slice(comma + 1) });
  }
  return { id, timestamp, timestampSec, signatures };
}

function matches(req: InboundRequest, parsed: ParsedHeaders, secrets: string[]): boolean {
  const signedPrefix = `${parsed.id}.${parsed.timestamp}.`;
  const v1 = parsed.signatures.filter((s) => s.version === "v1").map((s) => s.value);
  const v1a = parsed.signatures.filter((s) => s.version === "v1a").map((s) => s.value);
  let found = false;
  for (const secret of secrets) {
    const decoded = decodeSecret(secret);
    if (!decoded) continue;
    if (decoded.kind === "hmac") {
      const expected = hmacBase64("sha256", decoded.key, signedPrefix, req.rawBody);
      for (const candidate of v1) if (safeEqual(expected, candidate)) found = true;
    } else {
      const content = Buffer.concat([Buffer.from(signedPrefix, "utf8"), req.rawBody]);
      for (const candidate of v1a) {
        const sig = Buffer.from(candidate, "base64");
        if (sig.length !== 64) continue;
        try {
          if (verifySignature(null, content, decoded.key, sig)) found = true;
        } catch {
          // malformed signature: not a match
        }
      }
    }
  }
  return found;
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const parsed = parseHeaders(req);
  if ("ok" in parsed) return parsed;
  if (parsed.signatures.length === 0)
    return fail("missing_signature", "webhook-signature lists no signature");
  if (!matches(req, parsed, usable)) return fail("invalid_signature", "no signature matches any secret");
  return checkTimestamp(parsed.timestampSec, nowSec, resolveTolerance(opts), "both");
}

/**
 * Pigeon's registration handshake: a signed POST of
 * `{"type":"webhook.verification","data":{"challenge":"…"}}` (or with a top-level `challenge`),
 * answered 200 `{"challenge":"…"}` only once the signature verifies.
 */
function handshake(
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions,
  nowSec: number = Math.floor(Date.now() / 1000),
): HandshakeResponse | null {
  if (req.method !== "POST") return null;
  const body = jsonBody(req);
  if (prop(body, "type") !== "webhook.verification") return null;
  const challenge = prop(prop(body, "data"), "challenge") ?? prop(body, "challenge");
  if (typeof challenge !== "string") return null;
  const result = verify(req, secrets, opts, nowSec);
  if (!result.ok) return rejectedHandshake(result);
  return jsonResponse(200, { challenge });
}

export const standardWebhooks: ProviderVerifier = {
  name: "standard-webhooks",
  verify,
  handshake,
  eventId: (req) => firstHeader(req, "webhook-id", "svix-id"),
  eventTimeMs: (req) => {
    const sec = parseUnixSeconds(firstHeader(req, "webhook-timestamp", "svix-timestamp"));
    return sec === undefined ? undefined : sec * 1000;
  },
};
