import { slotSpacingMs } from "../store/rate-slots.js";

/**
 * A rate-limited source's items are claimed at most this far ahead of their start slot: long
 * enough to keep the pipeline full, short enough that a lease is not spent waiting.
 */
export const RATE_HORIZON_MS = 1000;

/**
 * Start slots per rate-limited source, spaced 1000/rate ms apart (the GCRA spacing endpoints
 * use), so no one-second window ever starts more than `rate` items of a source.
 */
export class SourceRateLimiter {
  private readonly nextSlot = new Map<string, number>();

  /**
   * How many slots open within the horizon (what a claim may take), and when to look again if
   * none does.
   */
  available(sourceId: string, ratePerSecond: number, now: number): { slots: number; retryAt?: number } {
    const spacing = slotSpacingMs(ratePerSecond);
    const free = Math.max(now, this.nextSlot.get(sourceId) ?? 0);
    const horizon = now + RATE_HORIZON_MS;
    if (free > horizon) return { slots: 0, retryAt: free - RATE_HORIZON_MS };
    return { slots: Math.floor((horizon - free) / spacing) + 1 };
  }

  /** Takes the next slot; returns when the item may start. */
  reserve(sourceId: string, ratePerSecond: number, now: number): number {
    const startAt = Math.max(now, this.nextSlot.get(sourceId) ?? 0);
    this.nextSlot.set(sourceId, startAt + slotSpacingMs(ratePerSecond));
    return startAt;
  }
}
