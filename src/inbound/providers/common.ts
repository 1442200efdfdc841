import { sha256Hex } from "./hmac.js";
import { getByPointer } from "./json-pointer.js";
import type {
  HandshakeResponse,
  InboundRequest,
  ProviderOptions,
  VerifyFailureCode,
  VerifyResult,
} from "./types.js";

export const OK: VerifyResult = Object.freeze({ ok: true });

export function fail(code: VerifyFailureCode, message: string): VerifyResult {
  return { ok: false, code, message };
}

export const NO_SECRETS: VerifyResult = Object.freeze({
  ok: false,
  code: "unsupported",
  message: "no secret is configured for this source",
});

/** A header value, trimmed; undefined when absent or blank. `name` may be in any case. */
export function header(req: InboundRequest, name: string): string | undefined {
  const value = req.headers[name.toLowerCase()];
  if (value === undefined) return undefined;
  const trimmed = value.trim();
  return trimmed === "" ? undefined : trimmed;
}

/** The first of several header names that is present. */
export function firstHeader(req: InboundRequest, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = header(req, name);
    if (value !== undefined) return value;
  }
  return undefined;
}

/** Configured secrets with blanks dropped (a blank secret would make an HMAC anyone can compute). */
export function usableSecrets(secrets: readonly string[]): string[] {
  return secrets.filter((secret) => typeof secret === "string" && secret.length > 0);
}

/** The media type of the body, lower-case, without parameters. */
export function mediaType(req: InboundRequest): string {
  return (header(req, "content-type") ?? "").split(";")[0]!.trim().toLowerCase();
}

const jsonCache = new WeakMap<Buffer, { value: unknown }>();

/** The body parsed as JSON, or undefined when it is not JSON. Cached per body buffer. */
export function jsonBody(req: InboundRequest): unknown {
  const cached = jsonCache.get(req.rawBody);
  if (cached) return cached.value;
  let value: unknown;
  try {
    value = JSON.parse(req.rawBody.toString("utf8"));
  } catch {
    value = undefined;
  }
  jsonCache.set(req.rawBody, { value });
  return value;
}

/** The body parsed as application/x-www-form-urlencoded. */
export function formBody(req: InboundRequest): URLSearchParams {
  return new URLSearchParams(req.rawBody.toString("utf8"));
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A property of a JSON object, following own properties only. */
export function prop(value: unknown, key: string): unknown {
  return isRecord(value) && Object.hasOwn(value, key) ? value[key] : undefined;
}

/** A non-empty string, or a finite number as a string; otherwise undefined. */
export function asId(value: unknown): string | undefined {
  if (typeof value === "string") return value === "" ? undefined : value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  return undefined;
}

/** A finite number, or a numeric string; otherwise undefined. */
export function asNumber(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isFinite(value) ? value : undefined;
  if (typeof value === "string" && /^-?\d+(\.\d+)?$/.test(value.trim())) return Number(value);
  return undefined;
}

/** Epoch ms from an ISO 8601 / RFC 3339 string. */
export function isoToMs(value: unknown): number | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * One de-dup key for a delivery that batches several events: the id itself for one event,
 * otherwise a hash of the sorted ids (a retry of the same batch yields the same key).
 */
export function combineIds(ids: readonly string[]): string | undefined {
  const unique = [...new Set(ids)].sort();
  if (unique.length === 0) return undefined;
  if (unique.length === 1) return unique[0];
  return `sha256:${sha256Hex(unique.join("\n"))}`;
}

/** Event id from `opts.eventIdHeader` or `opts.eventIdPointer` (header first). */
export function configuredEventId(
  req: InboundRequest,
  idHeader: string | undefined,
  idPointer: string | undefined,
): string | undefined {
  if (idHeader) {
    const value = header(req, idHeader);
    if (value !== undefined) return value;
  }
  if (idPointer !== undefined) {
    try {
      return asId(getByPointer(jsonBody(req), idPointer));
    } catch {
      return undefined;
    }
  }
  return undefined;
}

/**
 * The URL a URL-signing provider (Twilio, Square) signed: `opts.publicUrl` when set (with the
 * request's query appended when it has none of its own), else `req.url`.
 */
export function signedUrl(req: InboundRequest, opts: ProviderOptions): string {
  const configured = opts.publicUrl;
  if (!configured) return req.url;
  if (configured.includes("?")) return configured;
  const q = req.url.indexOf("?");
  return q >= 0 ? configured + req.url.slice(q) : configured;
}

export function jsonResponse(status: number, body: unknown): HandshakeResponse {
  return { status, headers: { "content-type": "application/json" }, body: JSON.stringify(body) };
}

/** A text/plain answer; nosniff stops a browser from rendering an echoed challenge as HTML. */
export function textResponse(status: number, body: string): HandshakeResponse {
  return {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
    body,
  };
}

/** The answer to a signed handshake whose signature did not verify. */
export function rejectedHandshake(result: VerifyResult): HandshakeResponse {
  if (result.ok) throw new Error("rejectedHandshake called with a successful result");
  return jsonResponse(401, { error: result.code, message: result.message });
}
