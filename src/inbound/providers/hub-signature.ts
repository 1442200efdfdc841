import { fail, header, NO_SECRETS, OK, usableSecrets } from "./common.js";
import { hmacHex, safeEqual } from "./hmac.js";
import type { InboundRequest, ProviderOptions, VerifyResult } from "./types.js";

/**
 * The `X-Hub-Signature-256: sha256=<hex HMAC of the raw body>` scheme shared by GitHub and Meta,
 * with the legacy `X-Hub-Signature: sha1=<hex>` accepted only under `opts.allowSha1` and only
 * when the SHA-256 header is absent (a sender that sends both is judged on the stronger one).
 */
export function verifyHubSignature(
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions,
): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  let algorithm: "sha256" | "sha1" = "sha256";
  let value = header(req, "x-hub-signature-256");
  if (value === undefined && opts.allowSha1) {
    algorithm = "sha1";
    value = header(req, "x-hub-signature");
  }
  if (value === undefined) return fail("missing_signature", "missing X-Hub-Signature-256 header");
  const prefix = `${algorithm}=`;
  if (!value.startsWith(prefix)) return fail("invalid_signature", `signature does not start with ${prefix}`);
  const given = value.slice(prefix.length).toLowerCase();
  let found = false;
  for (const secret of usable) {
    if (safeEqual(hmacHex(algorithm, secret, req.rawBody), given)) found = true;
  }
  return found ? OK : fail("invalid_signature", "signature matches no secret");
}
