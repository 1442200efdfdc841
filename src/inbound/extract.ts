import { createHash } from "node:crypto";
import { providerEventType } from "./event-type.js";
import { jsonBody } from "./providers/common.js";
import { getByPointer, inboundEventId, inboundEventTimeMs } from "./providers/index.js";
import type { InboundRequest, ProviderName, ProviderOptions } from "./providers/types.js";
import type { BodyKind, FieldRef, SourceOptions } from "./types.js";

/**
 * What Pigeon reads from a verified request before storing it: the de-duplication id, the event
 * type, the event time and the ordering key. Pure functions; nothing here throws on odd input.
 */

/** Longer values are replaced by a hash so a hostile sender cannot bloat the unique index. */
const MAX_KEY_LENGTH = 256;

/**
 * The value as stored, or its hash. Longer values are hashed (above); so are values holding NUL
 * (U+0000), which PostgreSQL text cannot hold: storing one failed the whole intake batch, so the
 * request was answered 503 on every retry and never stored. A hash keeps distinct values distinct
 * (replacing the NUL would merge "a\u0000" with "a\uFFFD"), so de-duplication and ordering hold,
 * the same on both backends; the original is in the body, kept byte for byte.
 */
export function boundedKey(value: string | undefined): string | null {
  if (value === undefined || value === "") return null;
  if (value.length <= MAX_KEY_LENGTH && !value.includes("\u0000")) return value;
  return `sha256:${createHash("sha256").update(value).digest("hex")}`;
}

export function bodyKindOf(contentType: string | undefined): BodyKind {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/json" || type.endsWith("+json") || type === "text/json") return "json";
  if (type === "application/x-www-form-urlencoded") return "form";
  if (type === "application/xml" || type === "text/xml" || type.endsWith("+xml")) return "xml";
  return "other";
}

function scalarText(value: unknown): string | undefined {
  if (typeof value === "string") return value === "" ? undefined : value;
  if (typeof value === "number" && Number.isFinite(value)) return String(value);
  if (typeof value === "boolean") return String(value);
  return undefined;
}

/** The value a FieldRef names, as text. */
export function readField(ref: FieldRef, req: InboundRequest, json: unknown): string | undefined {
  if ("header" in ref) {
    const value = req.headers[ref.header.toLowerCase()]?.trim();
    return value ? value : undefined;
  }
  try {
    return scalarText(getByPointer(json, ref.pointer));
  } catch {
    return undefined;
  }
}

/**
 * A time in epoch ms from a number or numeric text (seconds, or milliseconds from 13 digits, the
 * year 2286 in seconds) or an RFC 3339 string.
 */
export function parseEventTime(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^-?\d+(\.\d+)?$/.test(value)) {
    const n = Number(value);
    if (!Number.isFinite(n)) return undefined;
    return Math.abs(n) >= 1e12 ? Math.trunc(n) : Math.trunc(n * 1000);
  }
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/** The range of a JavaScript Date: ±100,000,000 days around 1970, well inside PostgreSQL's bigint. */
const MAX_DATE_MS = 8.64e15;

/**
 * Whether `ms` is a time some clock could show. A sender's time beyond it (10^23 ms from a numeric
 * string) failed the whole intake batch on PostgreSQL (bigint out of range: 503 on every retry, for
 * the requests sharing its commit too) and, on SQLite, made every later event of its key stale.
 */
function isDateTime(ms: number): boolean {
  return Number.isFinite(ms) && Math.abs(ms) <= MAX_DATE_MS;
}

export interface Extracted {
  eventId: string | null;
  eventType: string | null;
  eventTime: number | null;
  orderingKey: string | null;
}

export function extract(
  provider: ProviderName,
  req: InboundRequest,
  options: SourceOptions,
  provOptions: ProviderOptions,
): Extracted {
  // Shares the providers layer's per-body parse cache: verification already parsed it.
  const json = jsonBody(req);
  const eventType = options.eventType
    ? readField(options.eventType, req, json)
    : providerEventType(provider, req, json);
  const eventTime = options.eventTime
    ? parseEventTime(readField(options.eventTime, req, json))
    : inboundEventTimeMs(provider, req, provOptions);
  const orderingKey = options.orderingKey ? readField(options.orderingKey, req, json) : undefined;
  return {
    eventId: boundedKey(inboundEventId(provider, req, provOptions)),
    eventType: boundedKey(eventType),
    eventTime: eventTime === undefined || !isDateTime(eventTime) ? null : Math.trunc(eventTime),
    orderingKey: boundedKey(orderingKey),
  };
}
