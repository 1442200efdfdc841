/**
 * When to try a failed delivery again. The schedule lists the waits after the first try
 * (Svix's defaults: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); each wait is spread by ±jitter so
 * a burst of failures does not come back as a burst. A Retry-After the endpoint sent is honoured
 * (we never come back sooner than it asked) but capped, so a hostile value cannot park a message.
 */
export interface RetryPolicyOptions {
  scheduleMs: readonly number[];
  jitter: number;
  retryAfterMaxMs: number;
  random?: () => number;
}

export class RetryPolicy {
  private readonly random: () => number;

  constructor(private readonly options: RetryPolicyOptions) {
    this.random = options.random ?? Math.random;
  }

  /** Total tries a delivery gets: the first plus one per schedule entry. */
  get maxAttempts(): number {
    return this.options.scheduleMs.length + 1;
  }

  /**
   * The delay before the next try after `attemptsMade` tries have failed, or undefined when the
   * schedule is exhausted.
   */
  nextDelayMs(attemptsMade: number, retryAfterMs?: number): number | undefined {
    const base = this.options.scheduleMs[attemptsMade - 1];
    if (base === undefined) return undefined;
    const spread = 1 + (this.random() * 2 - 1) * this.options.jitter;
    const delay = Math.round(base * spread);
    if (retryAfterMs === undefined) return delay;
    return Math.max(delay, Math.min(retryAfterMs, this.options.retryAfterMaxMs));
  }
}
