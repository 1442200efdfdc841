import type { InboxStore, VerifyFailureTally } from "./store/inbox-store.js";

/**
 * Counts verification failures per source in memory and adds them to the stored counters about
 * once a second. Failures come from anyone who knows the URL, so writing each one would let a
 * flood of forged requests turn into a flood of fsyncs; a tally per interval costs one write.
 */
export class FailureCounter {
  private readonly pending = new Map<string, VerifyFailureTally>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: InboxStore,
    private readonly intervalMs = 1000,
  ) {}

  record(sourceId: string, code: string, now: number): void {
    const tally = this.pending.get(sourceId);
    if (tally) {
      tally.count++;
      tally.lastAt = now;
      tally.lastCode = code;
    } else {
      this.pending.set(sourceId, { sourceId, count: 1, lastAt: now, lastCode: code });
    }
    if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush().catch((error: unknown) => {
          console.error("pigeon: could not record verification failures", error);
        });
      }, this.intervalMs);
      this.timer.unref();
    }
  }

  /** Failures counted but not yet written, so the API can show an up-to-date total. */
  unflushed(sourceId: string): VerifyFailureTally | undefined {
    return this.pending.get(sourceId);
  }

  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.pending.size === 0) return;
    const tallies = [...this.pending.values()];
    this.pending.clear();
    await this.store.addVerifyFailures(tallies);
  }
}
