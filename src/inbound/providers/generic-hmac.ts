import { configuredEventId, fail, header, NO_SECRETS, OK, usableSecrets } from "./common.js";
import { hmac, safeEqual } from "./hmac.js";
import { isValidPointer } from "./json-pointer.js";
import { checkTimestamp, parseUnixSecondsOrMillis, resolveTolerance } from "./timestamp.js";
import type {
  GenericHmacOptions,
  InboundRequest,
  ProviderOptions,
  ProviderVerifier,
  VerifyResult,
} from "./types.js";

/**
 * A configurable HMAC scheme for senders without a dedicated verifier: HMAC(secret as UTF-8,
 * raw body) or HMAC(secret, timestamp + separator + raw body), hex or base64, in one header,
 * optionally behind a prefix such as `sha256=`. The header may list several signatures
 * separated by commas or spaces; any may match. A signed timestamp must be within the tolerance
 * in both directions.
 */

const ALGORITHMS = new Set(["sha1", "sha256", "sha512"]);
const ENCODINGS = new Set(["hex", "base64"]);

/** Why `options` cannot be used, or undefined when they are valid. */
export function genericOptionsError(options: GenericHmacOptions | undefined): string | undefined {
  if (!options) return "generic-hmac needs opts.generic";
  if (typeof options.header !== "string" || options.header.trim() === "") return "generic.header is required";
  if (!ALGORITHMS.has(options.algorithm)) return `generic.algorithm must be sha1, sha256 or sha512`;
  if (!ENCODINGS.has(options.encoding)) return `generic.encoding must be hex or base64`;
  if (options.signed !== "body" && options.signed !== "timestamp+body") {
    return `generic.signed must be "body" or "timestamp+body"`;
  }
  if (options.signed === "timestamp+body" && !options.timestampHeader) {
    return `generic.timestampHeader is required when signed is "timestamp+body"`;
  }
  if (options.eventIdPointer !== undefined && !isValidPointer(options.eventIdPointer)) {
    return "generic.eventIdPointer is not a valid JSON pointer";
  }
  return undefined;
}

function candidates(value: string, options: GenericHmacOptions): string[] {
  const out: string[] = [];
  for (const item of value.split(/[\s,]+/)) {
    if (item === "") continue;
    let sig = item;
    if (options.prefix) {
      if (!sig.startsWith(options.prefix)) continue;
      sig = sig.slice(options.prefix.length);
    }
    out.push(options.encoding === "hex" ? sig.toLowerCase() : sig);
  }
  return out;
}

function verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult {
  const options = opts.generic;
  const problem = genericOptionsError(options);
  if (problem !== undefined || options === undefined)
    return fail("unsupported", problem ?? "invalid options");
  const usable = usableSecrets(secrets);
  if (usable.length === 0) return NO_SECRETS;
  const value = header(req, options.header);
  if (value === undefined) return fail("missing_signature", `missing ${options.header} header`);
  const given = candidates(value, options);
  if (given.length === 0) {
    return fail("invalid_signature", `${options.header} holds no signature with the expected prefix`);
  }
  let prefixParts: string[] = [];
  let timestampSec: number | undefined;
  if (options.signed === "timestamp+body") {
    const timestamp = header(req, options.timestampHeader!);
    if (timestamp === undefined)
      return fail("missing_timestamp", `missing ${options.timestampHeader} header`);
    timestampSec = parseUnixSecondsOrMillis(timestamp);
    if (timestampSec === undefined)
      return fail("missing_timestamp", `${options.timestampHeader} is not a unix time`);
    prefixParts = [timestamp, options.separator ?? "."];
  }
  let found = false;
  for (const secret of usable) {
    const expected = hmac(options.algorithm, secret, ...prefixParts, req.rawBody).toString(options.encoding);
    for (const candidate of given) if (safeEqual(expected, candidate)) found = true;
  }
  if (!found) return fail("invalid_signature", "signature matches no secret");
  if (timestampSec === undefined) return OK;
  return checkTimestamp(timestampSec, nowSec, resolveTolerance(opts), "both");
}

export const genericHmac: ProviderVerifier = {
  name: "generic-hmac",
  verify,
  eventId: (req, opts) =>
    configuredEventId(
      req,
      opts.generic?.eventIdHeader ?? opts.eventIdHeader,
      opts.generic?.eventIdPointer ?? opts.eventIdPointer,
    ),
  eventTimeMs(req, opts) {
    const options = opts.generic;
    if (options?.signed !== "timestamp+body" || !options.timestampHeader) return undefined;
    const sec = parseUnixSecondsOrMillis(header(req, options.timestampHeader));
    return sec === undefined ? undefined : sec * 1000;
  },
};
