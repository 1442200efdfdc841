import type { IncomingHttpHeaders } from "node:http";
import { isIP } from "node:net";
import { performance } from "node:perf_hooks";
import { Agent } from "undici";
import { classifyError, type DeliveryErrorCode, describeError } from "./error-codes.js";
import { type CollectedResponse, ResponseCollector } from "./response-collector.js";
import { parseRetryAfter } from "./retry-after.js";
import { AddressPolicy } from "./ssrf/address-policy.js";
import type { Cidr } from "./ssrf/cidr.js";
import { createGuardedConnector, SsrfBlockedError } from "./ssrf/guarded-connect.js";

export type { DeliveryErrorCode } from "./error-codes.js";

export interface OutboundRequest {
  url: string;
  method: "POST" | "PUT" | "GET";
  headers: Record<string, string>;
  body?: Buffer;
  /** Whole-request budget: connect + send + headers + body. */
  timeoutMs: number;
}

export interface SendResult {
  /** HTTP status when a response arrived. */
  status?: number;
  /** True only for 2xx with the whole (possibly truncated) body read. */
  ok: boolean;
  /** The first maxResponseBytes of the body, decoded as UTF-8. */
  responseBody: string;
  responseHeaders: Record<string, string>;
  /** Wall time of the attempt in whole milliseconds (integer, so any store column fits). */
  durationMs: number;
  /** Set whenever ok is false; "http_status" for any non-2xx, 3xx included. */
  errorCode?: DeliveryErrorCode;
  errorMessage?: string;
  /** From Retry-After (delay-seconds or HTTP-date) when the response carried one. */
  retryAfterMs?: number;
}

export interface HttpSenderOptions {
  /** Networks allowed on top of globally routable addresses (PIGEON_ALLOWED_NETWORKS). */
  allowedNetworks: Cidr[];
  /** Response bytes kept per attempt. Default 65 536 (64 KiB). */
  maxResponseBytes?: number;
  /**
   * Most connections per origin (opened as needed, kept alive). Default 64; the engine passes
   * PIGEON_CONCURRENCY so that endpoints sharing a host never wait for each other's connections.
   */
  connectionsPerOrigin?: number;
}

const DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024;
const DEFAULT_CONNECTIONS_PER_ORIGIN = 64;

function elapsed(startedAt: number): number {
  return Math.round(performance.now() - startedAt);
}

function failure(startedAt: number, errorCode: DeliveryErrorCode, errorMessage: string): SendResult {
  return {
    ok: false,
    responseBody: "",
    responseHeaders: {},
    durationMs: elapsed(startedAt),
    errorCode,
    errorMessage,
  };
}

/** undici gives string[] for repeated headers; attempts store one string per name. */
function flattenHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined) out[name] = typeof value === "string" ? value : value.join(", ");
  }
  return out;
}

function timeoutMessage(timeoutMs: number): string {
  return `No complete response within ${timeoutMs} ms`;
}

/**
 * Retry-After as a delay, when the response carried a usable one. A repeated header is joined with
 * ", " in the stored headers, which no single value parses as (an HTTP date has commas of its own),
 * so the first value is read from the headers as they arrived.
 */
function retryAfterOf(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers["retry-after"];
  const first = Array.isArray(raw) ? raw[0] : raw;
  return first === undefined ? undefined : parseRetryAfter(first);
}

/** The attempt's result from what came back (or did not) for its request. */
function resultOf(
  response: CollectedResponse,
  startedAt: number,
  timedOut: boolean,
  timeoutMs: number,
): SendResult {
  if (!response.ok) {
    const errorCode = timedOut ? "timeout" : classifyError(response.error);
    const errorMessage = timedOut ? timeoutMessage(timeoutMs) : describeError(response.error);
    const result = failure(startedAt, errorCode, errorMessage);
    // The status line arrived but the body failed: keep what the receiver told us, its
    // Retry-After included (a 429 or 503 whose body broke off still asked for that wait).
    if (response.status !== undefined) {
      result.status = response.status;
      result.responseHeaders = flattenHeaders(response.headers ?? {});
      const retryAfterMs = retryAfterOf(response.headers ?? {});
      if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
    }
    return result;
  }
  const { status } = response;
  const responseHeaders = flattenHeaders(response.headers);
  const result: SendResult = {
    status,
    ok: status >= 200 && status < 300,
    responseBody: response.body,
    responseHeaders,
    durationMs: elapsed(startedAt),
  };
  if (!result.ok) {
    result.errorCode = "http_status";
    result.errorMessage = `HTTP ${status}`;
  }
  const retryAfterMs = retryAfterOf(response.headers);
  if (retryAfterMs !== undefined) result.retryAfterMs = retryAfterMs;
  return result;
}

/** Userinfo in a webhook URL (https://user:pass@host) means Basic auth, as Svix treats it. */
function withBasicAuth(url: URL, headers: Record<string, string>): Record<string, string> {
  if (url.username === "" && url.password === "") return headers;
  for (const name in headers) if (name.toLowerCase() === "authorization") return headers;
  const credentials = `${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`;
  return { ...headers, authorization: `Basic ${Buffer.from(credentials).toString("base64")}` };
}

/**
 * Sends one webhook attempt and reports what happened. It never throws: timeouts, DNS failures,
 * refused or reset connections, TLS problems and SSRF blocks all come back as a SendResult with a
 * stable errorCode, because the dispatcher records failures rather than handling exceptions.
 *
 * One undici Agent is shared by every endpoint: keep-alive pools per origin, pipelining 1 (a
 * slow response must not hold up the next request on the same socket), redirects never followed.
 */
export class HttpSender {
  readonly #agent: Agent;
  readonly #policy: AddressPolicy;
  readonly #maxResponseBytes: number;

  constructor(opts: HttpSenderOptions) {
    this.#policy = new AddressPolicy(opts.allowedNetworks);
    this.#maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.#agent = new Agent({
      connections: opts.connectionsPerOrigin ?? DEFAULT_CONNECTIONS_PER_ORIGIN,
      pipelining: 1,
      connect: createGuardedConnector(this.#policy),
    });
  }

  async send(req: OutboundRequest): Promise<SendResult> {
    const startedAt = performance.now();

    let url: URL;
    try {
      url = new URL(req.url);
    } catch {
      return failure(startedAt, "invalid_url", `Invalid URL: ${req.url}`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      return failure(startedAt, "invalid_url", `Unsupported URL scheme "${url.protocol}": use http or https`);
    }
    // Node never runs `lookup` for IP literals, so they are checked here, before any I/O.
    const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
    if (isIP(host) !== 0 && !this.#policy.isAllowed(host)) {
      return failure(startedAt, "ssrf_blocked", new SsrfBlockedError(host, host).message);
    }

    // headersTimeout/bodyTimeout only bound the gaps between bytes; this timer bounds the total,
    // so a server dripping one byte per second cannot hold an attempt open forever.
    let timedOut = false;
    const response = await new Promise<CollectedResponse>((resolve) => {
      const settle = (collected: CollectedResponse) => {
        clearTimeout(timer);
        resolve(collected);
      };
      const handler = new ResponseCollector(this.#maxResponseBytes, settle);
      const timer = setTimeout(() => {
        timedOut = true;
        handler.abort(new Error(timeoutMessage(req.timeoutMs)));
      }, req.timeoutMs);
      try {
        this.#agent.dispatch(
          {
            origin: url.origin,
            path: url.pathname + url.search,
            method: req.method,
            headers: withBasicAuth(url, req.headers),
            body: req.body ?? null,
            headersTimeout: req.timeoutMs,
            bodyTimeout: req.timeoutMs,
          },
          handler,
        );
      } catch (error) {
        settle({ ok: false, error: error as Error });
      }
    });
    return resultOf(response, startedAt, timedOut, req.timeoutMs);
  }

  /** Waits for in-flight requests, then closes every pooled connection. */
  async close(): Promise<void> {
    await this.#agent.close();
  }
}
