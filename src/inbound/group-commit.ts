/**
 * Group commit: every item submitted in the same turn of the event loop is written by one call
 * (one transaction, one fsync), and each submitter is answered when that call resolves.
 *
 * Why: with synchronous=FULL each commit waits for an fsync. Committing per request caps intake
 * at one fsync per request and, with better-sqlite3 being synchronous, blocks the event loop for
 * each. Requests that finish reading their bodies in the same I/O phase share one commit instead;
 * none is answered before its row is on disk. While a write is running (a networked backend),
 * new items queue for the next one, so batches grow with load rather than latency.
 */
export class GroupCommit<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private writing = false;

  constructor(
    private readonly write: (items: T[]) => Promise<R[]>,
    /** Most items per write; a larger backlog is split so no one transaction grows unbounded. */
    private readonly maxBatch = 1000,
  ) {}

  submit(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /** Items waiting for the next write. */
  get pending(): number {
    return this.queue.length;
  }

  private schedule(): void {
    if (this.scheduled || this.writing) return;
    this.scheduled = true;
    // setImmediate runs after the current I/O phase, so every request whose body completed in
    // this phase is already queued.
    setImmediate(() => {
      this.scheduled = false;
      void this.drain();
    });
  }

  private async drain(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        try {
          const results = await this.write(batch.map((b) => b.item));
          batch.forEach((b, i) => {
            b.resolve(results[i] as R);
          });
        } catch (error) {
          for (const b of batch) b.reject(error);
        }
      }
    } finally {
      this.writing = false;
    }
  }
}
