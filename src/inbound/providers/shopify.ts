import { fail, firstHeader, isoToMs, NO_SECRETS, OK, usableSecrets } from "./common.js";
import { hmacBase64, safeEqual } from "./hmac.js";
import type { ProviderVerifier, VerifyResult } from "./types.js";

/**
 * Shopify: `X-Shopify-Hmac-Sha256: <base64 HMAC-SHA256(app client secret, raw body)>`; the
 * Events API sends the same headers without the `X-` prefix. Nothing time-based is signed
 * (the 90 s clock tolerance in shopify-api applies only to OAuth/app-proxy query HMACs).
 */
export const shopify: ProviderVerifier = {
  name: "shopify",
  verify(req, secrets): VerifyResult {
    const usable = usableSecrets(secrets);
    if (usable.length === 0) return NO_SECRETS;
    const given = firstHeader(req, "x-shopify-hmac-sha256", "shopify-hmac-sha256");
    if (given === undefined) return fail("missing_signature", "missing X-Shopify-Hmac-Sha256 header");
    let found = false;
    for (const secret of usable) {
      if (safeEqual(hmacBase64("sha256", secret, req.rawBody), given)) found = true;
    }
    return found ? OK : fail("invalid_signature", "signature matches no secret");
  },
  eventId: (req) =>
    firstHeader(req, "x-shopify-event-id", "shopify-event-id") ??
    firstHeader(req, "x-shopify-webhook-id", "shopify-webhook-id"),
  eventTimeMs: (req) => isoToMs(firstHeader(req, "x-shopify-triggered-at", "shopify-triggered-at")),
};
