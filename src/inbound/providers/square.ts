import {
  asId,
  fail,
  header,
  isoToMs,
  jsonBody,
  NO_SECRETS,
  OK,
  prop,
  signedUrl,
  usableSecrets,
} from "./common.js";
import { hmacBase64, safeEqual } from "./hmac.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Square: `x-square-hmacsha256-signature: <base64 HMAC-SHA256(signature key, notification URL +
 * raw body)>`, as square-nodejs-sdk's WebhooksHelper computes it (but compared in constant
 * time). The notification URL is `opts.publicUrl` or `req.url`. The legacy
 * `x-square-signature` (HMAC-SHA1) is accepted only with `opts.allowSha1` and when the SHA-256
 * header is absent. Nothing time-based is signed; de-dup on the body's `event_id`.
 */
function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  let algorithm: "sha256" | "sha1" = "sha256";
  let given = header(req, "x-square-hmacsha256-signature");
  if (given === undefined && opts.allowSha1) {
    algorithm = "sha1";
    given = header(req, "x-square-signature");
  }
  if (given === undefined) return fail("missing_signature", "missing x-square-hmacsha256-signature header");
  const url = signedUrl(req, opts);
  let found = false;
  for (const secret of usable) {
    if (safeEqual(hmacBase64(algorithm, secret, url, req.rawBody), given)) found = true;
  }
  return found ? OK : fail("invalid_signature", "signature matches no secret");
}

export const square: ProviderVerifier = {
  name: "square",
  verify,
  eventId: (req) => asId(prop(jsonBody(req), "event_id")),
  eventTimeMs: (req) => isoToMs(prop(jsonBody(req), "created_at")),
};
