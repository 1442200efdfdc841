import type { Clock } from "../core/clock.js";
import { slotSpacingMs } from "../store/rate-slots.js";
import { NonRetryableError, retryDelayMs } from "./retry.js";
import { type ProcessingSettings, resolveProcessing } from "./source-options.js";
import { type InboxStore, keyOf } from "./store/inbox-store.js";
import type { ClaimedItem, InboxItem, ItemOutcome, Source } from "./types.js";

export interface ProcessorOptions {
  /** How long a claim holds an item before another worker may take it. */
  leaseMs: number;
  /** Longest sleep while idle; new items wake the processor at once. */
  pollIntervalMs: number;
  /** Most items in flight across all sources. */
  globalConcurrency: number;
  /** Most items per claim query. */
  claimBatchSize?: number;
}

export interface ConsumeContext {
  attempt: number;
  stale: boolean;
}

export interface ProcessorDeps {
  store: InboxStore;
  clock: Clock;
  /** Every source with its settings (cached by the caller; sources are few). */
  sources: () => Promise<Source[]>;
  /** Which sources have anything to hand items to right now (null: all of them). */
  consumableSourceIds: (sources: Source[]) => string[] | null;
  /** Hands one item on; resolves when it was handled, rejects (or times out) when not. */
  consume: (item: InboxItem, source: Source, ctx: ConsumeContext) => Promise<void>;
  /** Called with every batch of outcomes after it is committed (tests and metrics). */
  onCompleted?: (outcomes: readonly ItemOutcome[]) => void;
}

interface Held {
  sourceId: string;
  key: string | null;
}

class HandlerTimeout extends Error {
  constructor(ms: number) {
    super(`handler did not finish within ${ms} ms`);
    this.name = "HandlerTimeout";
  }
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

/**
 * Hands inbox items on asynchronously: claim under a lease → (stale check) → consume → record.
 *
 * Throughput control: per source at most `concurrency` items in flight and at most
 * `ratePerSecond` started per second; across sources `globalConcurrency`. An ordering key is
 * processed one item at a time, oldest first, so "older than the newest processed" is decided
 * against a settled mark. An item counts as in flight until its outcome is committed, so a cap
 * holds even across the gap between a handler finishing and its row being updated.
 *
 * Crash safety: the claim writes the lease end as the item's next due time; a process that dies
 * leaves its items to come due again (at least once to the handler). Outcomes are committed
 * before the item is let go, so a processed item is never handed out again.
 */
export class InboxProcessor {
  private readonly claimBatchSize: number;
  private readonly held = new Map<string, Held>();
  private readonly heldBySource = new Map<string, number>();
  private readonly busyKeys = new Set<string>();
  /** Next free send slot per rate-limited source (GCRA spacing, as for endpoints). */
  private readonly nextSlot = new Map<string, number>();
  private readonly pending: ItemOutcome[] = [];
  private readonly running_ = new Set<Promise<void>>();
  /** Claimed items waiting for their rate slot; released, not run, on stop. */
  private readonly waitingForSlot = new Map<string, NodeJS.Timeout>();
  private running = false;
  private claiming = false;
  private claimAgain = false;
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  private wakeTimer: NodeJS.Timeout | undefined;
  private claimLoopDone: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: ProcessorDeps,
    private readonly options: ProcessorOptions,
  ) {
    this.claimBatchSize = options.claimBatchSize ?? 128;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.wake();
  }

  /** Stops claiming, lets running handlers finish, records them, and gives back what never started. */
  async stop(): Promise<void> {
    this.running = false;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.claimLoopDone;
    const unstarted = [...this.waitingForSlot.keys()];
    for (const timer of this.waitingForSlot.values()) clearTimeout(timer);
    this.waitingForSlot.clear();
    while (this.running_.size > 0) await Promise.allSettled([...this.running_]);
    await this.flushNow();
    if (unstarted.length > 0) await this.deps.store.releaseItems(unstarted, this.deps.clock.now());
    for (const id of unstarted) this.release(id);
  }

  /** New items were committed: look for work now rather than at the next poll. */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claimLoopDone = this.claimLoop();
  }

  /** Items claimed and not yet recorded. */
  get inFlight(): number {
    return this.held.size;
  }

  private async claimLoop(): Promise<void> {
    this.claiming = true;
    try {
      do {
        this.claimAgain = false;
        await this.claimOnce();
      } while (this.claimAgain && this.running);
    } catch (error) {
      console.error("pigeon: inbox claim failed; retrying at the next poll", error);
    } finally {
      this.claiming = false;
    }
  }

  private async claimOnce(): Promise<void> {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (!this.running) return;
    const room = this.options.globalConcurrency - this.held.size;
    const now = this.deps.clock.now();
    const sources = await this.deps.sources();
    const allowed = this.deps.consumableSourceIds(sources);
    // At the global cap, the next flush wakes us; with nothing to hand items to, only the poll.
    if (room <= 0) return;
    if (allowed !== null && allowed.length === 0) {
      this.armWake(now, now + this.options.pollIntervalMs);
      return;
    }
    const bySource = new Map(sources.map((s) => [s.id, s]));
    const roomBySource: Record<string, number> = {};
    const exclude: string[] = [];
    let rateWakeAt: number | undefined;
    let longestTimeout = 0;
    for (const source of sources) {
      const settings = resolveProcessing(source.options);
      longestTimeout = Math.max(longestTimeout, settings.handlerTimeoutMs);
      let left = settings.concurrency - (this.heldBySource.get(source.id) ?? 0);
      if (settings.ratePerSecond !== null) {
        // Claim no more than the slots that open within the next second; the rest stay due.
        const spacing = slotSpacingMs(settings.ratePerSecond);
        const free = Math.max(now, this.nextSlot.get(source.id) ?? 0);
        const slots = Math.floor((now + 1000 - free) / spacing);
        if (slots <= 0) {
          const at = free - 1000 + spacing;
          rateWakeAt = rateWakeAt === undefined ? at : Math.min(rateWakeAt, at);
        }
        left = Math.min(left, Math.max(slots, 0));
      }
      if (left <= 0) exclude.push(source.id);
      else roomBySource[source.id] = left;
    }
    // A handler may run up to its timeout; the lease must outlast it or a second worker would
    // take the item while the first is still on it.
    const leaseMs = Math.max(this.options.leaseMs, longestTimeout * 2);
    const claimed = await this.deps.store.claimItems({
      now,
      limit: Math.min(this.claimBatchSize, room),
      leaseUntil: now + leaseMs,
      sourceIds: allowed,
      excludeSourceIds: exclude,
      roomBySource,
      busyKeys: [...this.busyKeys],
    });
    for (const claim of claimed) {
      const source = bySource.get(claim.item.sourceId);
      if (!source) continue; // created after our source list was read: taken at its lease end
      this.hold(claim.item);
      this.begin(claim, source, now);
    }
    if (claimed.length > 0) {
      this.claimAgain = true;
      return;
    }
    // Idle: sleep until the earliest retry or rate slot, at most one poll interval.
    const due = await this.deps.store.nextDueAt(allowed);
    let at = now + this.options.pollIntervalMs;
    if (due !== undefined && due > now) at = Math.min(at, due);
    if (rateWakeAt !== undefined) at = Math.min(at, rateWakeAt);
    this.armWake(now, at);
  }

  private armWake(now: number, at: number): void {
    if (!this.running) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = setTimeout(() => this.wake(), Math.max(1, at - now));
    this.wakeTimer.unref();
  }

  private hold(item: InboxItem): void {
    const key = item.orderingKey === null ? null : keyOf(item.sourceId, item.orderingKey);
    this.held.set(item.id, { sourceId: item.sourceId, key });
    this.heldBySource.set(item.sourceId, (this.heldBySource.get(item.sourceId) ?? 0) + 1);
    if (key !== null) this.busyKeys.add(key);
  }

  private release(id: string): void {
    const held = this.held.get(id);
    if (!held) return;
    this.held.delete(id);
    const count = (this.heldBySource.get(held.sourceId) ?? 1) - 1;
    if (count <= 0) this.heldBySource.delete(held.sourceId);
    else this.heldBySource.set(held.sourceId, count);
    if (held.key !== null) this.busyKeys.delete(held.key);
  }

  private begin(claim: ClaimedItem, source: Source, now: number): void {
    const settings = resolveProcessing(source.options);
    let startAt = now;
    if (settings.ratePerSecond !== null) {
      startAt = Math.max(now, this.nextSlot.get(source.id) ?? 0);
      this.nextSlot.set(source.id, startAt + slotSpacingMs(settings.ratePerSecond));
    }
    const run = () => {
      const task = this.process(claim, source, settings).finally(() => this.running_.delete(task));
      this.running_.add(task);
    };
    if (startAt <= now) {
      run();
      return;
    }
    const timer = setTimeout(() => {
      this.waitingForSlot.delete(claim.item.id);
      if (this.running) run();
    }, startAt - now);
    this.waitingForSlot.set(claim.item.id, timer);
  }

  private async process(claim: ClaimedItem, source: Source, settings: ProcessingSettings): Promise<void> {
    const { item, newestProcessedTime } = claim;
    const base = { id: item.id, sourceId: item.sourceId };
    const stale =
      item.orderingKey !== null &&
      item.eventTime !== null &&
      newestProcessedTime !== null &&
      item.eventTime < newestProcessedTime;
    if (stale && settings.staleAction === "skip") {
      this.record({ ...base, result: "stale" });
      return;
    }
    const attempt = item.attempts + 1;
    try {
      await this.withTimeout(
        this.deps.consume(item, source, { attempt, stale }),
        settings.handlerTimeoutMs,
      );
      const mark =
        !stale && item.orderingKey !== null && item.eventTime !== null
          ? { key: item.orderingKey, eventTime: item.eventTime }
          : undefined;
      this.record({ ...base, result: "processed", stale, ...(mark ? { mark } : {}) });
    } catch (error) {
      const message = errorText(error);
      if (error instanceof NonRetryableError || attempt >= settings.maxAttempts) {
        this.record({ ...base, result: "failed", error: message });
      } else {
        const nextAttemptAt = this.deps.clock.now() + retryDelayMs(attempt, settings);
        this.record({ ...base, result: "retry", nextAttemptAt, error: message });
      }
    }
  }

  private withTimeout(work: Promise<void>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HandlerTimeout(ms)), ms);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  private record(outcome: ItemOutcome): void {
    this.pending.push(outcome);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Outcomes of one event-loop turn share one transaction.
    setImmediate(() => {
      this.flushScheduled = false;
      void this.flushNow();
    });
  }

  private flushNow(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      if (this.pending.length === 0) return;
      const batch = this.pending.splice(0, this.pending.length);
      try {
        await this.deps.store.completeItems(batch, this.deps.clock.now());
      } catch (error) {
        // Not recorded: the items stay leased and come due again when the lease ends.
        console.error("pigeon: could not record inbox outcomes; they will be retried", error);
      }
      for (const outcome of batch) this.release(outcome.id);
      this.deps.onCompleted?.(batch);
      this.wake();
    });
    return this.flushing;
  }
}
