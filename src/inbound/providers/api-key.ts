import { configuredEventId, fail, header, NO_SECRETS, OK, usableSecrets } from "./common.js";
import { safeEqualAnySecret } from "./hmac.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

export const DEFAULT_API_KEY_HEADER = "x-api-key";

/**
 * A shared key in a header (`opts.apiKeyHeader`, default `x-api-key`), compared in constant time
 * against every secret. With `authorization` as the header, a `Bearer ` prefix is stripped.
 */
function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const name = (opts.apiKeyHeader ?? DEFAULT_API_KEY_HEADER).toLowerCase();
  let value = header(req, name);
  if (value === undefined) return fail("unauthorized", `missing ${name} header`);
  if (name === "authorization") {
    const bearer = /^bearer\s+(.+)$/i.exec(value);
    if (bearer) value = bearer[1]!.trim();
  }
  return safeEqualAnySecret(value, usable) ? OK : fail("unauthorized", "key matches no secret");
}

export const apiKey: ProviderVerifier = {
  name: "api-key",
  verify,
  eventId: (req, opts) => configuredEventId(req, opts.eventIdHeader, opts.eventIdPointer),
};
