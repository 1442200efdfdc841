/**
 * Send-slot spacing for rate-limited endpoints (GCRA with a burst of one): slot n+1 starts
 * `slotSpacingMs` after slot n. Unlike a token bucket with a one-second burst, spacing means no
 * sliding one-second window holds more than `rate` slots.
 *
 * A send may start a little after its slot (timers fire late when the event loop is busy). Within
 * one process the dispatcher pushes the next slot back by that lateness, so its starts are always a
 * full spacing apart. Across workers the spacing leaves room for it: `rate` slots span 1000 +
 * SLOT_LATENESS_TOLERANCE_MS (+ a margin for arrival jitter), so sends that each start within the
 * tolerance of their slot still fit `rate` to any one-second window. A send later than that gives
 * its slot up and reserves a new one (see the dispatcher).
 */
export const SLOT_LATENESS_TOLERANCE_MS = 60;

/**
 * Room for what happens between a send's start and its arrival (building and writing the request
 * on a busy machine). Without it, a send started 60 ms late and the next `rate` − 1 started on time
 * fit one second exactly at the receiver, and a few milliseconds of jitter made `rate` + 1: seen
 * under a full test run on 2 cores.
 */
export const SLOT_ARRIVAL_MARGIN_MS = 40;

export function slotSpacingMs(ratePerSecond: number): number {
  return (1000 + SLOT_LATENESS_TOLERANCE_MS + SLOT_ARRIVAL_MARGIN_MS) / ratePerSecond;
}

/** In-memory slots: the whole truth for a backend owned by one process (SQLite). */
export class LocalRateSlots {
  private readonly nextFree = new Map<string, number>();

  reserve(key: string, ratePerSecond: number, now: number): number {
    const slot = Math.max(now, this.nextFree.get(key) ?? 0);
    this.nextFree.set(key, slot + slotSpacingMs(ratePerSecond));
    // Forget keys that have gone quiet so the map does not grow with every endpoint ever seen.
    if (this.nextFree.size > 10_000) {
      for (const [k, at] of this.nextFree) if (at < now) this.nextFree.delete(k);
    }
    return slot;
  }
}
