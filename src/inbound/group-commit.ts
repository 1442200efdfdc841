/**
 * Group commit: every item submitted in the same turn of the event loop is written by one call
 * (one transaction, one fsync), and each submitter is answered when that call resolves.
 *
 * Why: each durable commit waits for an fsync. Committing per request would cost one fsync per
 * request; requests that finish reading their bodies in the same I/O phase share one instead,
 * and none is answered before its row is on disk.
 *
 * Writes overlap (up to `maxWriting`): the next turn's batch is committed while the previous
 * one still waits for its fsync, and both are made durable by the next fsync (see WalSync), so a
 * request waits for about one fsync, not for the one before it as well. Beyond `maxWriting`,
 * items queue and the batches grow with the load instead.
 */
export class GroupCommit<T, R> {
  private queue: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private scheduled = false;
  private writing = 0;

  constructor(
    private readonly write: (items: T[]) => Promise<R[]>,
    /** Most items per write; a larger backlog is split so no one transaction grows unbounded. */
    private readonly maxBatch = 1000,
    /** Most writes waiting for the disk at once. */
    private readonly maxWriting = 4,
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

  /** Whether a write starts in this turn's check phase (items queued, and room to write them). */
  get writesThisTurn(): boolean {
    return this.scheduled && this.writing < this.maxWriting;
  }

  private schedule(): void {
    if (this.scheduled || this.queue.length === 0 || this.writing >= this.maxWriting) return;
    this.scheduled = true;
    // setImmediate runs after the current I/O phase, so every request whose body completed in
    // this phase is already queued.
    setImmediate(() => {
      this.scheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    while (this.queue.length > 0 && this.writing < this.maxWriting) {
      const batch = this.queue.splice(0, this.maxBatch);
      this.writing++;
      // A write that throws instead of rejecting still answers its batch.
      new Promise<R[]>((resolve) => resolve(this.write(batch.map((b) => b.item))))
        .then(
          (results) => {
            batch.forEach((b, i) => {
              b.resolve(results[i] as R);
            });
          },
          (error: unknown) => {
            for (const b of batch) b.reject(error);
          },
        )
        .finally(() => {
          this.writing--;
          this.schedule();
        });
    }
  }
}
