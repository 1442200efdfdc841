import { fail, header, NO_SECRETS, OK, textResponse, usableSecrets } from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import type { ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Dropbox: `X-Dropbox-Signature: <hex HMAC-SHA256(app secret, raw body)>`. Notifications are
 * thin (changed account ids only), so there is no event id: the app re-fetches with its cursor.
 *
 * Handshake: `GET ?challenge=…` answered 200 with the challenge as text/plain and
 * `X-Content-Type-Options: nosniff`.
 */
export const dropbox: ProviderVerifier = {
  name: "dropbox",
  verify(req, secrets): VerifyResult {
    const usable = usableSecrets(secrets);
    if (usable.length === 0) return NO_SECRETS;
    const given = header(req, "x-dropbox-signature");
    if (given === undefined) return fail("missing_signature", "missing X-Dropbox-Signature header");
    const normalized = given.toLowerCase();
    let found = false;
    for (const secret of usable) {
      if (safeEqual(hmacHex("sha256", secret, req.rawBody), normalized)) found = true;
    }
    return found ? OK : fail("invalid_signature", "signature matches no secret");
  },
  handshake(req) {
    if (req.method !== "GET") return null;
    const challenge = req.query.get("challenge");
    return challenge === null ? null : textResponse(200, challenge);
  },
};
