import type { IncomingHttpHeaders, IncomingMessage } from "node:http";
import { answerHandshake as providerHandshake, verifyInbound } from "../inbound/providers/index.js";
import { toInboundRequest } from "../inbound/providers/request.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderName,
  ProviderOptions,
  VerifyResult,
} from "../inbound/providers/types.js";
import { readRequestBody } from "../inbound/read-request-body.js";

/**
 * Verification for any Node HTTP app, without a Pigeon server: the same provider verifiers the
 * ingest route uses, on the raw bytes, against every secret, in constant time.
 */

/** A request with its raw body: node's IncomingMessage plus the bytes, or Express with express.raw(). */
export interface VerifiableRequest {
  method?: string | undefined;
  /** `req.url` (path and query) or an absolute URL. */
  url?: string | undefined;
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  /** The raw body exactly as received; a parsed object cannot be verified. */
  body: string | Uint8Array;
}

export interface VerifyOptions extends ProviderOptions {
  /** "Now" in unix seconds, for tests and replays. Default: the wall clock. */
  nowSec?: number;
}

function absoluteUrl(req: VerifiableRequest): string {
  const url = req.url ?? "/";
  if (/^https?:\/\//i.test(url)) return url;
  const header = (name: string): string | undefined => {
    const value = req.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  const proto = header("x-forwarded-proto")?.split(",")[0]?.trim() === "https" ? "https" : "http";
  return `${proto}://${header("host") ?? "localhost"}${url.startsWith("/") ? url : `/${url}`}`;
}

function toRequest(req: VerifiableRequest): InboundRequest {
  const body: unknown = req.body;
  if (typeof body !== "string" && !(body instanceof Uint8Array)) {
    throw new TypeError(
      "verify(): req.body must be the raw body (string or Buffer). With Express use express.raw({ type: '*/*' }), not express.json().",
    );
  }
  return toInboundRequest({
    method: req.method ?? "POST",
    url: absoluteUrl(req),
    headers: req.headers as Record<string, string | string[] | undefined>,
    body,
  });
}

function secretList(secrets: string | readonly string[]): string[] {
  return typeof secrets === "string" ? [secrets] : [...secrets];
}

/** Verifies `req` with `provider`'s scheme; `{ ok: true }` or `{ ok: false, code, message }`. */
export function verify(
  provider: ProviderName,
  req: VerifiableRequest,
  secrets: string | readonly string[],
  opts: VerifyOptions = {},
): VerifyResult {
  const { nowSec, ...options } = opts;
  return verifyInbound(provider, toRequest(req), secretList(secrets), options, nowSec);
}

/** The answer to the provider's registration handshake, or null when `req` is not one. */
export function answerHandshake(
  provider: ProviderName,
  req: VerifiableRequest,
  secrets: string | readonly string[],
  opts: VerifyOptions = {},
): HandshakeResponse | null {
  const { nowSec, ...options } = opts;
  return providerHandshake(provider, toRequest(req), secretList(secrets), options, nowSec);
}

/**
 * Reads a node request's body (at most `maxBodyBytes`, default 1 MiB) and verifies it. The body
 * is returned so the caller can parse what was verified, not a second read of the stream.
 */
export async function verifyRequest(
  provider: ProviderName,
  req: IncomingMessage,
  secrets: string | readonly string[],
  opts: VerifyOptions & { maxBodyBytes?: number } = {},
): Promise<{ result: VerifyResult; body: Buffer }> {
  const { maxBodyBytes = 1024 * 1024, ...rest } = opts;
  const read = await readRequestBody(req, maxBodyBytes);
  if (!read.ok) {
    const message =
      read.reason === "too_large" ? `body larger than ${maxBodyBytes} bytes` : "request aborted";
    return { result: { ok: false, code: "unsupported", message }, body: Buffer.alloc(0) };
  }
  const result = verify(
    provider,
    { method: req.method, url: req.url, headers: req.headers, body: read.body },
    secrets,
    rest,
  );
  return { result, body: read.body };
}
