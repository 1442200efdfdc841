import type { InboxStore, VerifyFailureTally } from "./store/inbox-store.js";

/**
 * Counts verification failures per source in memory and adds them to the stored counters about
 * once a second. Failures come from anyone who knows the URL, so writing each one would let a
 * flood of forged requests turn into a flood of fsyncs; a tally per interval costs one write.
 */
export class FailureCounter {
  private readonly pending = new Map<string, VerifyFailureTally>();
  private timer: NodeJS.Timeout | undefined;
  /** The write under way, so a flush can wait for what an earlier one took out of `pending`. */
  private writing: Promise<void> = Promise.resolve();

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

  /**
   * Writes what is counted and resolves once every failure counted before the call is committed,
   * including those an earlier flush took and is still writing. Reading the stored counters after
   * it is exact; adding the in-memory tally to a read instead races with a flush that empties the
   * tally while the read is on its way (the inbox answers on another thread or connection).
   */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    // An earlier write that failed has already been reported by its own caller.
    const earlier = this.writing.catch(() => undefined);
    if (this.pending.size === 0) return earlier;
    const tallies = [...this.pending.values()];
    this.pending.clear();
    const write = earlier.then(() => this.store.addVerifyFailures(tallies));
    this.writing = write;
    await write;
  }
}
