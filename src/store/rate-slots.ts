/**
 * Send-slot spacing for rate-limited endpoints (GCRA with a burst of one): slot n+1 starts
 * 1000/rate ms after slot n. Unlike a token bucket with a one-second burst, spacing means no
 * sliding one-second window ever sees more than `rate` sends. The margin absorbs the jitter
 * between when we send and when the receiver counts an arrival.
 */
export const SLOT_SPACING_MARGIN = 1.01;

export function slotSpacingMs(ratePerSecond: number): number {
  return (1000 / ratePerSecond) * SLOT_SPACING_MARGIN;
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
