import { errorMessage } from "../../core/errors.js";
import { apiKey } from "./api-key.js";
import { basic } from "./basic.js";
import { dropbox } from "./dropbox.js";
import { genericHmac } from "./generic-hmac.js";
import { github } from "./github.js";
import { answerGenericHandshake } from "./graph.js";
import { mailgun } from "./mailgun.js";
import { meta } from "./meta.js";
import { none } from "./none.js";
import { sendgrid } from "./sendgrid.js";
import { shopify } from "./shopify.js";
import { slack } from "./slack.js";
import { square } from "./square.js";
import { standardWebhooks } from "./standard-webhooks.js";
import { stripe } from "./stripe.js";
import { twilio } from "./twilio.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderName,
  ProviderOptions,
  ProviderVerifier,
  VerifyResult,
} from "./types.js";
import { x } from "./x.js";
import { zoom } from "./zoom.js";

export { genericOptionsError } from "./generic-hmac.js";
export { answerGenericHandshake } from "./graph.js";
export { safeEqual } from "./hmac.js";
export { getByPointer, isValidPointer } from "./json-pointer.js";
export { DEFAULT_TOLERANCE_SEC } from "./timestamp.js";
export type * from "./types.js";

const PROVIDERS: Readonly<Record<ProviderName, ProviderVerifier>> = Object.freeze({
  "standard-webhooks": standardWebhooks,
  github,
  stripe,
  shopify,
  slack,
  twilio,
  zoom,
  meta,
  square,
  dropbox,
  x,
  sendgrid,
  mailgun,
  "generic-hmac": genericHmac,
  basic,
  "api-key": apiKey,
  none,
});

export const PROVIDER_NAMES: readonly ProviderName[] = Object.freeze(
  Object.keys(PROVIDERS) as ProviderName[],
);

export function isProviderName(name: string): name is ProviderName {
  return Object.hasOwn(PROVIDERS, name);
}

/** The verifier for `name`; throws TypeError for an unknown name. */
export function getProvider(name: ProviderName): ProviderVerifier {
  if (!isProviderName(name)) throw new TypeError(`unknown inbound provider: ${JSON.stringify(name)}`);
  return PROVIDERS[name];
}

function nowSeconds(): number {
  return Math.floor(Date.now() / 1000);
}

/**
 * Verifies `req` with `provider`'s scheme against every secret (rotation). Never throws: an
 * unknown provider or bad options give `unsupported`, anything unexpected `invalid_signature`.
 */
export function verifyInbound(
  provider: ProviderName,
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions = {},
  nowSec: number = nowSeconds(),
): VerifyResult {
  if (!isProviderName(provider)) {
    return { ok: false, code: "unsupported", message: `unknown inbound provider: ${String(provider)}` };
  }
  try {
    return PROVIDERS[provider].verify(req, secrets, opts, nowSec);
  } catch (error) {
    return {
      ok: false,
      code: "invalid_signature",
      message: `verification failed: ${errorMessage(error)}`,
    };
  }
}

/**
 * The response to send when `req` is a registration handshake for `provider`, else null (then
 * verify and ingest as usual). Falls back to Microsoft Graph's `validationToken` echo for every
 * provider. Signed handshakes are verified first; `nowSec` is used for their timestamp check.
 */
export function answerHandshake(
  provider: ProviderName,
  req: InboundRequest,
  secrets: string[],
  opts: ProviderOptions = {},
  nowSec: number = nowSeconds(),
): HandshakeResponse | null {
  if (!isProviderName(provider)) return null;
  let answer: HandshakeResponse | null = null;
  try {
    answer = PROVIDERS[provider].handshake?.(req, secrets, opts, nowSec) ?? null;
  } catch {
    answer = null;
  }
  return answer ?? answerGenericHandshake(req);
}

/** The provider's event/delivery id for de-duplication, when it has one. */
export function inboundEventId(
  provider: ProviderName,
  req: InboundRequest,
  opts: ProviderOptions = {},
): string | undefined {
  if (!isProviderName(provider)) return undefined;
  try {
    return PROVIDERS[provider].eventId?.(req, opts);
  } catch {
    return undefined;
  }
}

/** The event time (epoch ms) when the provider carries one. */
export function inboundEventTimeMs(
  provider: ProviderName,
  req: InboundRequest,
  opts: ProviderOptions = {},
): number | undefined {
  if (!isProviderName(provider)) return undefined;
  try {
    const ms = PROVIDERS[provider].eventTimeMs?.(req, opts);
    return ms !== undefined && Number.isFinite(ms) ? ms : undefined;
  } catch {
    return undefined;
  }
}
export { type InboundRequestInit, toInboundRequest } from "./request.js";
