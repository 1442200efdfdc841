/**
 * Per-endpoint admission: a concurrency cap and an optional rate limit (token bucket, requests
 * per second, burst of one second's worth). Kept per process: on SQLite one process owns the
 * database, so this is the whole truth there.
 */
export class EndpointLimiter {
  private inFlight = 0;
  private tokens: number;
  private refilledAt: number;

  constructor(
    private concurrency: number,
    private ratePerSecond: number | null,
    now: number,
  ) {
    this.tokens = ratePerSecond ?? 0;
    this.refilledAt = now;
  }

  configure(concurrency: number, ratePerSecond: number | null): void {
    if (ratePerSecond !== this.ratePerSecond) {
      this.tokens = Math.min(this.tokens, ratePerSecond ?? 0);
      this.ratePerSecond = ratePerSecond;
    }
    this.concurrency = concurrency;
  }

  get active(): number {
    return this.inFlight;
  }

  get cap(): number {
    return this.concurrency;
  }

  get rate(): number | null {
    return this.ratePerSecond;
  }

  private refill(now: number): void {
    if (this.ratePerSecond === null) return;
    const elapsed = Math.max(0, now - this.refilledAt);
    this.tokens = Math.min(this.ratePerSecond, this.tokens + (elapsed * this.ratePerSecond) / 1000);
    this.refilledAt = now;
  }

  /** Milliseconds until a request may start (0 = now). */
  waitMs(now: number): number {
    if (this.inFlight >= this.concurrency) return Number.POSITIVE_INFINITY;
    if (this.ratePerSecond === null) return 0;
    this.refill(now);
    if (this.tokens >= 1) return 0;
    return Math.ceil(((1 - this.tokens) * 1000) / this.ratePerSecond);
  }

  acquire(now: number): void {
    if (this.ratePerSecond !== null) {
      this.refill(now);
      this.tokens -= 1;
    }
    this.inFlight += 1;
  }

  release(): void {
    this.inFlight = Math.max(0, this.inFlight - 1);
  }
}
