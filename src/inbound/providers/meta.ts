import {
  asId,
  asNumber,
  combineIds,
  isRecord,
  jsonBody,
  prop,
  textResponse,
  usableSecrets,
} from "./common.js";
import { safeEqualAnySecret } from "./hmac.js";
import { verifyHubSignature } from "./hub-signature.js";
import type { HandshakeResponse, InboundRequest, ProviderOptions, ProviderVerifier } from "./types.js";

/**
 * Meta (Facebook, Instagram, WhatsApp): `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app
 * secret, raw body)>`. Meta signs the escaped-unicode form it sends, so only the raw bytes work.
 *
 * Handshake: `GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`; 200 with the raw
 * challenge when the token matches (`opts.verifyToken`, else any secret), otherwise 403.
 */

function handshake(req: InboundRequest, secrets: string[], opts: ProviderOptions): HandshakeResponse | null {
  if (req.method !== "GET") return null;
  const mode = req.query.get("hub.mode");
  if (mode === null) return null;
  const token = req.query.get("hub.verify_token") ?? "";
  const challenge = req.query.get("hub.challenge");
  const accepted = opts.verifyToken ? [opts.verifyToken] : usableSecrets(secrets);
  if (mode !== "subscribe" || challenge === null || token === "" || !safeEqualAnySecret(token, accepted)) {
    return textResponse(403, "Forbidden");
  }
  return textResponse(200, challenge);
}

function entries(req: InboundRequest): unknown[] {
  const entry = prop(jsonBody(req), "entry");
  return Array.isArray(entry) ? entry : [];
}

function list(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/**
 * Messenger/Instagram message `mid`s and WhatsApp message/status ids; failing those, each entry's
 * `id:time`. Meta batches, so several ids are folded into one key.
 */
function eventId(req: InboundRequest): string | undefined {
  const ids: string[] = [];
  const fallback: string[] = [];
  for (const entry of entries(req)) {
    for (const messaging of list(prop(entry, "messaging"))) {
      const mid = asId(prop(prop(messaging, "message"), "mid")) ?? asId(prop(prop(messaging, "read"), "mid"));
      if (mid) ids.push(mid);
    }
    for (const change of list(prop(entry, "changes"))) {
      const value = prop(change, "value");
      for (const item of [...list(prop(value, "messages")), ...list(prop(value, "statuses"))]) {
        const id = asId(prop(item, "id"));
        const status = asId(prop(item, "status"));
        if (id) ids.push(status ? `${id}:${status}` : id);
      }
    }
    const entryId = asId(prop(entry, "id"));
    const time = asId(prop(entry, "time"));
    if (entryId && time && isRecord(entry)) fallback.push(`${entryId}:${time}`);
  }
  return combineIds(ids.length > 0 ? ids : fallback);
}

/** The latest `entry[].time`; Messenger sends milliseconds, other objects seconds. */
function eventTimeMs(req: InboundRequest): number | undefined {
  let latest: number | undefined;
  for (const entry of entries(req)) {
    const time = asNumber(prop(entry, "time"));
    if (time === undefined) continue;
    const ms = time < 1e11 ? time * 1000 : time;
    if (latest === undefined || ms > latest) latest = ms;
  }
  return latest;
}

export const meta: ProviderVerifier = {
  name: "meta",
  verify: (req, secrets, opts) => verifyHubSignature(req, secrets, opts),
  handshake,
  eventId,
  eventTimeMs,
};
