import { configuredEventId, fail, header, NO_SECRETS, OK, usableSecrets } from "./common.js";
import { safeEqualAnySecret } from "./hmac.js";
import type { InboundRequest, ProviderOptions, ProviderVerifier, VerifyResult } from "./types.js";

/**
 * HTTP Basic authentication: `Authorization: Basic base64(user:password)` checked against
 * secrets written as `user:password`. The decoded credentials are compared whole, in constant
 * time, against every secret.
 */
function verify(req: InboundRequest, secrets: string[]): VerifyResult {
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const value = header(req, "authorization");
  if (value === undefined) return fail("unauthorized", "missing Authorization header");
  const match = /^basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(value);
  if (!match) return fail("unauthorized", "Authorization is not Basic");
  const credentials = Buffer.from(match[1]!, "base64").toString("utf8");
  return safeEqualAnySecret(credentials, usable) ? OK : fail("unauthorized", "credentials match no secret");
}

export const basic: ProviderVerifier = {
  name: "basic",
  verify,
  eventId: (req: InboundRequest, opts: ProviderOptions) =>
    configuredEventId(req, opts.eventIdHeader, opts.eventIdPointer),
};
