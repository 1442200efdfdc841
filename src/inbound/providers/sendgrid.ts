import { createPublicKey, type KeyObject, verify as verifySignature } from "node:crypto";
import {
  asId,
  asNumber,
  combineIds,
  fail,
  header,
  jsonBody,
  NO_SECRETS,
  OK,
  prop,
  usableSecrets,
} from "./common.js";
import { checkTimestamp, parseUnixSeconds, resolveTolerance } from "./timestamp.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * SendGrid (Twilio) Event Webhook: `X-Twilio-Email-Event-Webhook-Signature` is a base64 DER
 * ECDSA P-256/SHA-256 signature over `timestamp + raw body` (the trailing CRLF SendGrid sends is
 * part of it), `X-Twilio-Email-Event-Webhook-Timestamp` the timestamp. The "secret" is the
 * verification key SendGrid shows: base64 SPKI DER (a PEM block is accepted too). node:crypto
 * verifies it directly; starkbank-ecdsa is not needed.
 *
 * SendGrid's library checks no freshness; since the timestamp is signed, stale ones are
 * rejected here like Stripe's (set `toleranceSec: 0` to turn that off).
 */

function publicKey(secret: string): KeyObject | undefined {
  try {
    if (secret.includes("-----BEGIN")) return createPublicKey(secret);
    return createPublicKey({ key: Buffer.from(secret, "base64"), format: "der", type: "spki" });
  } catch {
    return undefined;
  }
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const keys = usableSecrets(secrets)
    .map(publicKey)
    .filter((key): key is KeyObject => key !== undefined);
  if (keys.length === 0) {
    return secrets.length === 0
      ? NO_SECRETS
      : fail("unsupported", "no configured secret is a valid public key");
  }
  const signature = header(req, "x-twilio-email-event-webhook-signature");
  if (signature === undefined) {
    return fail("missing_signature", "missing X-Twilio-Email-Event-Webhook-Signature header");
  }
  const timestamp = header(req, "x-twilio-email-event-webhook-timestamp");
  if (timestamp === undefined) {
    return fail("missing_timestamp", "missing X-Twilio-Email-Event-Webhook-Timestamp header");
  }
  const timestampSec = parseUnixSeconds(timestamp);
  if (timestampSec === undefined) {
    return fail("missing_timestamp", "X-Twilio-Email-Event-Webhook-Timestamp is not a unix time");
  }
  const content = Buffer.concat([Buffer.from(timestamp, "utf8"), req.rawBody]);
  const sig = Buffer.from(signature, "base64");
  let found = false;
  for (const key of keys) {
    try {
      if (verifySignature("sha256", content, key, sig)) found = true;
    } catch {
      // a malformed DER signature is simply not a match
    }
  }
  if (!found) return fail("invalid_signature", "signature does not verify under any key");
  const fresh = checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "past");
  return fresh.ok ? OK : fresh;
}

function events(req: InboundRequest): unknown[] {
  const body = jsonBody(req);
  return Array.isArray(body) ? body : [];
}

export const sendgrid: ProviderVerifier = {
  name: "sendgrid",
  verify,
  /** SendGrid batches events; the delivery's key folds every `sg_event_id`. */
  eventId: (req) =>
    combineIds(
      events(req)
        .map((event) => asId(prop(event, "sg_event_id")))
        .filter((id): id is string => id !== undefined),
    ),
  /** The latest per-event `timestamp` (seconds). */
  eventTimeMs(req) {
    let latest: number | undefined;
    for (const event of events(req)) {
      const t = asNumber(prop(event, "timestamp"));
      if (t !== undefined && (latest === undefined || t > latest)) latest = t;
    }
    return latest === undefined ? undefined : latest * 1000;
  },
};
