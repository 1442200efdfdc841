import type { ProviderOptions, VerifyResult } from "./types.js";

export const DEFAULT_TOLERANCE_SEC = 300;

/** `past`: reject only stale timestamps (Stripe, Slack, Zoom…). `both`: also reject future ones (Standard Webhooks). */
export type ToleranceDirection = "past" | "both";

/**
 * The tolerance in seconds to enforce: 300 when unset, `Infinity` (check disabled) when ≤ 0.
 * NaN falls back to the default rather than silently disabling the check.
 */
export function resolveTolerance(opts: ProviderOptions): number {
  const value = opts.toleranceSec;
  if (value === undefined || typeof value !== "number" || Number.isNaN(value)) return DEFAULT_TOLERANCE_SEC;
  return value <= 0 ? Number.POSITIVE_INFINITY : value;
}

/** A unix time in whole seconds written as plain digits; anything else is undefined. */
export function parseUnixSeconds(value: string | undefined): number | undefined {
  if (value === undefined || !/^\d{1,15}$/.test(value)) return undefined;
  return Number(value);
}

/**
 * Like parseUnixSeconds, but a value of 13 or more digits is taken as milliseconds (some senders
 * use ms; 13 digits in seconds would be the year 33658).
 */
export function parseUnixSecondsOrMillis(value: string | undefined): number | undefined {
  const n = parseUnixSeconds(value);
  if (n === undefined || value === undefined) return undefined;
  return value.length >= 13 ? Math.floor(n / 1000) : n;
}

export function checkTimestamp(
  timestampSec: number,
  nowSec: number,
  toleranceSec: number,
  direction: ToleranceDirection,
): VerifyResult {
  if (!Number.isFinite(toleranceSec)) return { ok: true };
  const age = nowSec - timestampSec;
  if (age > toleranceSec) {
    return {
      ok: false,
      code: "timestamp_out_of_tolerance",
      message: `timestamp is too old: ${age}s old, tolerance ${toleranceSec}s`,
    };
  }
  if (direction === "both" && -age > toleranceSec) {
    return {
      ok: false,
      code: "timestamp_out_of_tolerance",
      message: `timestamp is too new: ${-age}s in the future, tolerance ${toleranceSec}s`,
    };
  }
  return { ok: true };
}
