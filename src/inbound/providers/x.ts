import {
  asId,
  combineIds,
  fail,
  header,
  isRecord,
  jsonBody,
  jsonResponse,
  NO_SECRETS,
  OK,
  prop,
  textResponse,
  usableSecrets,
} from "./common.js";
import { hmacBase64, safeEqual } from "./hmac.js";
import type { HandshakeResponse, InboundRequest, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * X (Twitter) Account Activity: `x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256(
 * consumer secret, raw body)>` (base64, not hex). Nothing time-based is signed.
 *
 * CRC handshake: `GET ?crc_token=…` answered 200 `{"response_token":"sha256=<base64
 * HMAC(consumer secret, crc_token)>"}` with the first (current) secret.
 *
 * Because the CRC answer is the same MAC as an event signature, an unrestricted CRC endpoint
 * would sign any body an attacker sends as `crc_token`. X's tokens are short base64/UUID-like
 * strings, while every event body is a JSON object, so tokens outside that alphabet are refused.
 */

const CRC_TOKEN = /^[A-Za-z0-9+/=_.~-]{1,256}$/;

function verify(req: InboundRequest, secrets: string[]): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const value = header(req, "x-twitter-webhooks-signature");
  if (value === undefined) return fail("missing_signature", "missing x-twitter-webhooks-signature header");
  if (!value.startsWith("sha256=")) return fail("invalid_signature", "signature does not start with sha256=");
  const given = value.slice(7);
  let found = false;
  for (const secret of usable) {
    if (safeEqual(hmacBase64("sha256", secret, req.rawBody), given)) found = true;
  }
  return found ? OK : fail("invalid_signature", "signature matches no secret");
}

export function crcResponseToken(consumerSecret: string, crcToken: string): string {
  return `sha256=${hmacBase64("sha256", consumerSecret, crcToken)}`;
}

function handshake(req: InboundRequest, secrets: string[]): HandshakeResponse | null {
  if (req.method !== "GET") return null;
  const token = req.query.get("crc_token");
  if (token === null) return null;
  const secret = usableSecrets(secrets)[0];
  if (secret === undefined) return textResponse(500, "no consumer secret configured");
  if (!CRC_TOKEN.test(token)) return textResponse(400, "malformed crc_token");
  return jsonResponse(200, { response_token: crcResponseToken(secret, token) });
}

/** Account Activity batches `*_events` arrays; the ids of all their items form one key. */
function eventId(req: InboundRequest): string | undefined {
  const body = jsonBody(req);
  if (!isRecord(body)) return undefined;
  const ids: string[] = [];
  for (const [key, value] of Object.entries(body)) {
    if (!key.endsWith("_events") || !Array.isArray(value)) continue;
    for (const item of value) {
      const id = asId(prop(item, "id_str")) ?? asId(prop(item, "id"));
      if (id !== undefined) ids.push(`${key}:${id}`);
    }
  }
  return combineIds(ids);
}

export const x: ProviderVerifier = { name: "x", verify, handshake, eventId };
