import type { Clock } from "../core/clock.js";
import { SourceRateLimiter } from "./rate-limit.js";
import { NonRetryableError, retryDelayMs } from "./retry.js";
import { type ProcessingSettings, resolveProcessing } from "./source-options.js";
import { type Handoff, type InboxStore, keyOf, type OutcomeCarry } from "./store/inbox-store.js";
import type { ClaimedItem, InboxItem, ItemOutcome, NewInboxItem, Source } from "./types.js";

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
  /** Taken at insert while the source's caps were full: waits here, not in the store, to start. */
  queued: boolean;
  /** The handler is done; the item waits for its outcome to be committed. */
  finished: boolean;
}

/**
 * Items the handoff may take beyond a full cap, per cap's worth of concurrency. They wait in
 * memory and start as slots free; otherwise each would be stored unclaimed and read back by a
 * claim query (a transaction on the inbox's one writer, and the body read again) moments later.
 * A crash loses nothing: they are stored under a lease and were never handed to anyone.
 */
const QUEUE_PER_CAP = 2;

class HandlerTimeout extends Error {
  constructor(ms: number) {
    super(`handler did not finish within ${ms} ms`);
    this.name = "HandlerTimeout";
  }
}

/**
 * The error recorded as an item's lastError. NUL (U+0000) becomes U+FFFD, the replacement
 * character: PostgreSQL text cannot hold it, and a handler error quoting one failed the whole
 * outcome batch, again on every retry, so the item (and its batch-mates) ran again and again and
 * never used up its attempts. Done here, for both backends, so the API shows the same text.
 */
function errorText(error: unknown): string {
  const text = (error instanceof Error ? `${error.name}: ${error.message}` : String(error)).replaceAll(
    "\u0000",
    "\uFFFD",
  );
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const next = (counts.get(key) ?? 0) + by;
  if (next <= 0) counts.delete(key);
  else counts.set(key, next);
}

/**
 * Hands inbox items on asynchronously: claim under a lease → (stale check) → consume → record.
 *
 * Throughput control: per source at most `concurrency` items in flight and at most
 * `ratePerSecond` started per second; across sources `globalConcurrency`. An ordering key is
 * processed one item at a time, oldest first, so "older than the newest processed" is decided
 * against a settled mark: its key stays busy until the outcome is committed.
 *
 * Fresh items usually skip the claim: the intake offers each new item to `handoff()` inside its
 * insert, and an item the processor has room for is stored already leased and handed straight
 * to `adopt()` once durable. Only when something is queued (a backlog, retries, a full cap) do
 * items go through the claim query, so a fresh item never overtakes older queued ones for long.
 *
 * Crash safety: the claim writes the lease end as the item's next due time; a process that dies
 * leaves its items to come due again (at least once to the handler). Outcomes are committed
 * before the item is let go, so a processed item is never handed out again.
 */
export class InboxProcessor {
  private readonly claimBatchSize: number;
  private readonly held = new Map<string, Held>();
  private readonly heldBySource = new Map<string, number>();
  private readonly queuedBySource = new Map<string, number>();
  /** Held items whose handler has not finished yet: what the concurrency caps count. */
  private readonly activeBySource = new Map<string, number>();
  private active = 0;
  private readonly busyKeys = new Set<string>();
  /** Taken items waiting for a free slot, per source, oldest first (see QUEUE_PER_CAP). */
  private readonly queued = new Map<string, ClaimedItem[]>();
  private queuedCount = 0;
  /** What the pending claim may take, per source and in all (see takeBesideClaim). */
  private claimReserved = new Map<string, number>();
  private claimReservedTotal = 0;
  private readonly rates = new SourceRateLimiter();
  private readonly pending: ItemOutcome[] = [];
  private readonly tasks = new Set<Promise<void>>();
  /** Claimed items waiting for their rate slot; released, not run, on stop. */
  private readonly waitingForSlot = new Map<string, NodeJS.Timeout>();
  private running = false;
  private claiming = false;
  private claimAgain = false;
  /**
   * Counts freed slots and keys (finish, release). A claim compares it before and after: what
   * was freed while it ran may let it take items it had to pass over, and the wake that freeing
   * asked for was dropped, since the claim had cleared the backlog before its query.
   */
  private freed = 0;
  private flushScheduled = false;
  private flushing: Promise<void> = Promise.resolve();
  /** The intake, whose insert of this turn may record pending outcomes (see carry). */
  private carrier: { writesThisTurn(): boolean } | undefined;
  private wakeTimer: NodeJS.Timeout | undefined;
  private claimLoopDone: Promise<void> = Promise.resolve();
  /** Sources as of the last claim, for the synchronous handoff decisions. */
  private snapshot = new Map<string, { source: Source; settings: ProcessingSettings; consumable: boolean }>();
  private leaseMs: number;
  /**
   * Whether items may be waiting in the store (stored unclaimed, retries, released leases).
   * While they may, new items go through the claim too, so they queue behind the old ones.
   */
  private backlog = true;
  /** A claim query is between deciding what it may take and holding what it took. */
  private claimPending = false;
  /** Settles when stop() begins: timed-out handlers are then no longer waited for (see process). */
  private stopping: Promise<void> = new Promise(() => undefined);
  private signalStop: () => void = () => undefined;

  constructor(
    private readonly deps: ProcessorDeps,
    private readonly options: ProcessorOptions,
  ) {
    this.claimBatchSize = options.claimBatchSize ?? 128;
    this.leaseMs = options.leaseMs;
  }

  /**
   * The intake's way to give new items straight to this processor (see the class comment);
   * undefined while stopped or while older items may be waiting.
   */
  handoff(): Handoff | undefined {
    if (!this.running || this.backlog || this.snapshot.size === 0) return undefined;
    return {
      leaseUntil: this.deps.clock.now() + this.leaseMs,
      take: (item) => this.take(item),
      untake: (id) => this.release(id),
    };
  }

  /** Lets the intake's inserts record outcomes (see carry); without it every batch commits alone. */
  carryWith(carrier: { writesThisTurn(): boolean }): void {
    this.carrier = carrier;
  }

  /**
   * The pending outcomes, for an insert to record in its own transaction, or undefined when
   * there are none. Why: at full load items arrive and finish in the same turns, and the
   * outcomes' own commit rewrote pages the insert had just written (the table's and the indexes'
   * tails); in one transaction they are written once, and one commit's fixed costs go
   * (bench/probes/inbox-commit.ts: 19.8 against 22.7 WAL pages a batch of 17). Later flushes wait for
   * the carried batch, so stop() still returns only once every outcome is recorded or failed.
   */
  carry(): OutcomeCarry | undefined {
    if (this.pending.length === 0) return undefined;
    const outcomes = this.pending.splice(0, this.pending.length);
    let settle!: () => void;
    const settled = new Promise<void>((resolve) => {
      settle = resolve;
    });
    this.flushing = this.flushing.then(() => settled);
    return {
      outcomes,
      now: this.deps.clock.now(),
      recorded: () => {
        this.afterRecorded(outcomes);
        settle();
      },
      failed: (error) => {
        // Recorded on their own instead, as if they had never been carried.
        console.error("pigeon: could not record inbox outcomes with an insert; recording them alone", error);
        this.pending.push(...outcomes);
        settle();
        void this.flushNow();
      },
    };
  }

  /** Starts taken items once their insert is durable. */
  adopt(claims: ClaimedItem[]): void {
    if (claims.length === 0) return;
    if (!this.running) {
      // Stopped while their insert was committing: give them back rather than run them.
      const ids = claims.map((c) => c.item.id);
      for (const id of ids) this.release(id);
      void this.deps.store.releaseItems(ids, this.deps.clock.now()).catch(() => undefined);
      return;
    }
    const now = this.deps.clock.now();
    for (const claim of claims) this.place(claim, this.snapshot.get(claim.item.sourceId)?.source, now);
  }

  /**
   * A held claim goes where `hold` put it: started, or into its source's queue. Without its
   * source (deleted, or created after the source list was read) it is let go, due at its lease end.
   */
  private place(claim: ClaimedItem, source: Source | undefined, now: number): void {
    if (!source) this.release(claim.item.id);
    else if (this.held.get(claim.item.id)?.queued) this.enqueue(claim);
    else this.begin(claim, source, now);
  }

  private enqueue(claim: ClaimedItem): void {
    const queue = this.queued.get(claim.item.sourceId);
    if (queue) queue.push(claim);
    else this.queued.set(claim.item.sourceId, [claim]);
    // A slot may have freed while the insert was committing.
    this.startQueued(claim.item.sourceId);
  }

  /** Starts queued items of a source while its caps allow. */
  private startQueued(sourceId: string): void {
    const queue = this.queued.get(sourceId);
    const entry = this.snapshot.get(sourceId);
    if (!queue || !entry || !this.running) return;
    const now = this.deps.clock.now();
    while (queue.length > 0 && this.room(sourceId, entry.settings.concurrency) > 0) {
      const claim = queue.shift()!;
      const held = this.held.get(claim.item.id);
      if (!held?.queued) continue;
      this.unqueue(held);
      this.countActive(sourceId);
      this.begin(claim, entry.source, now);
    }
    if (queue.length === 0) this.queued.delete(sourceId);
  }

  /** New items were stored unclaimed: from now on they queue for the claim. */
  noteBacklog(): void {
    this.backlog = true;
    this.wake();
  }

  private take(item: NewInboxItem): boolean {
    const entry = this.snapshot.get(item.sourceId);
    if (!entry?.consumable || entry.settings.ratePerSecond !== null) return false;
    if (item.orderingKey !== null && this.busyKeys.has(keyOf(item.sourceId, item.orderingKey))) return false;
    if (this.claimPending) return this.takeBesideClaim(item, entry.settings.concurrency);
    if (this.room(item.sourceId, entry.settings.concurrency) > 0) {
      this.hold(item);
      return true;
    }
    if (this.sourceQueueSpace(item.sourceId, entry.settings.concurrency) <= 0) return false;
    if (this.globalQueueSpace() <= 0) return false;
    this.hold(item, true);
    return true;
  }

  /**
   * A claim is choosing items right now and may take up to what it reserved (slots and queue).
   * Beyond that an item may still wait in the queue; refusing it sent it to the store and made
   * the next claim, and under load the claims never ended. An item with an ordering key is left
   * to the store: the claim may be taking an older item of the same key.
   */
  private takeBesideClaim(item: NewInboxItem, cap: number): boolean {
    if (item.orderingKey !== null) return false;
    const reserved = this.claimReserved.get(item.sourceId) ?? 0;
    const sourceSpace =
      Math.max(0, this.room(item.sourceId, cap)) + this.sourceQueueSpace(item.sourceId, cap);
    const globalSpace = Math.max(0, this.globalRoom()) + this.globalQueueSpace();
    if (sourceSpace - reserved <= 0 || globalSpace - this.claimReservedTotal <= 0) return false;
    this.hold(item, true);
    return true;
  }

  /** How many more items of a source may wait taken and not started (see QUEUE_PER_CAP). */
  private sourceQueueSpace(sourceId: string, cap: number): number {
    return QUEUE_PER_CAP * cap - (this.queuedBySource.get(sourceId) ?? 0);
  }

  /** How many more items may wait taken and not started, all sources together. */
  private globalQueueSpace(): number {
    return QUEUE_PER_CAP * this.options.globalConcurrency - this.queuedCount;
  }

  /** A queued item leaves the queue's counts: it starts, or is given back. */
  private unqueue(held: Held): void {
    held.queued = false;
    this.queuedCount--;
    bump(this.queuedBySource, held.sourceId, -1);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopping = new Promise((resolve) => {
      this.signalStop = resolve;
    });
    this.wake();
  }

  /** Stops claiming, lets running handlers finish, records them, and gives back what never started. */
  async stop(): Promise<void> {
    this.running = false;
    this.signalStop();
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    await this.claimLoopDone;
    const unstarted = [...this.waitingForSlot.keys()];
    for (const timer of this.waitingForSlot.values()) clearTimeout(timer);
    this.waitingForSlot.clear();
    for (const queue of this.queued.values()) for (const claim of queue) unstarted.push(claim.item.id);
    this.queued.clear();
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
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
      // claimOnce cleared the wake timer and maybe the backlog before it failed (reading the
      // sources, the claim query, nextDueAt): without both, nothing would claim again. Items may
      // be waiting in the store, so new ones queue behind them until a claim succeeds.
      this.backlog = true;
      const now = this.deps.clock.now();
      this.armWake(now, now + this.options.pollIntervalMs);
    } finally {
      this.claiming = false;
    }
  }

  private async claimOnce(): Promise<void> {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    if (!this.running) return;
    const now = this.deps.clock.now();
    const sources = await this.deps.sources();
    // From here to the claim query the caps and busy keys are read without a pause.
    const freedBefore = this.freed;
    const room = this.globalRoom();
    const allowed = this.deps.consumableSourceIds(sources);
    const consumable = allowed === null ? null : new Set(allowed);
    this.snapshot = new Map(
      sources.map((source) => [
        source.id,
        {
          source,
          settings: resolveProcessing(source.options),
          consumable: consumable?.has(source.id) ?? true,
        },
      ]),
    );
    // At the global cap, the next flush wakes us, as a backlog (a retry whose timer fired here
    // is waiting, and new items must queue behind it); the poll too, in case none is pending.
    // With nothing to hand items to, only the poll.
    if (room <= 0) {
      this.backlog = true;
      this.armWake(now, now + this.options.pollIntervalMs);
      return;
    }
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
      let left = this.room(source.id, settings.concurrency);
      if (settings.ratePerSecond !== null) {
        // Claim no more than the slots that open within the next second; the rest stay due.
        const { slots, retryAt } = this.rates.available(source.id, settings.ratePerSecond, now);
        if (retryAt !== undefined) rateWakeAt = Math.min(rateWakeAt ?? retryAt, retryAt);
        left = Math.min(left, slots);
      } else {
        // Beyond the free slots, fill the source's queue too, so one claim drains a backlog
        // that fits in memory and new items go back to the handoff.
        left += Math.max(0, this.sourceQueueSpace(source.id, settings.concurrency));
      }
      if (left <= 0) exclude.push(source.id);
      else roomBySource[source.id] = left;
    }
    // A handler may run up to its timeout; the lease must outlast it or a second worker would
    // take the item while the first is still on it.
    this.leaseMs = Math.max(this.options.leaseMs, longestTimeout * 2);
    // Nothing can be taken beyond what the sources' caps leave room for.
    let sourceRoom = 0;
    for (const [id, left] of Object.entries(roomBySource))
      if (consumable?.has(id) ?? true) sourceRoom += left;
    const limit = Math.min(this.claimBatchSize, room + Math.max(0, this.globalQueueSpace()), sourceRoom);
    if (limit <= 0) {
      // Every cap is full: a flush wakes us; a rate-limited source needs its next slot too.
      this.backlog = true;
      this.armWake(now, Math.min(rateWakeAt ?? Number.POSITIVE_INFINITY, now + this.options.pollIntervalMs));
      return;
    }
    // Cleared before the query: anything stored unclaimed after this point sets it again.
    this.backlog = false;
    // Until the claimed items are held, the handoff would see their caps and ordering keys as
    // free and could start a second item of a key, or more than a cap: it takes only keyless
    // items, into the queue, beyond what this claim reserves (see takeBesideClaim).
    this.claimPending = true;
    this.claimReserved = new Map(Object.entries(roomBySource));
    this.claimReservedTotal = limit;
    let claimed: ClaimedItem[];
    try {
      claimed = await this.deps.store.claimItems({
        now,
        limit,
        leaseUntil: now + this.leaseMs,
        sourceIds: allowed,
        excludeSourceIds: exclude,
        roomBySource,
        busyKeys: [...this.busyKeys],
        heldIds: [...this.held.keys()],
      });
      // Oldest first: what the free slots take starts now, the rest waits in the queue.
      for (const claim of claimed) {
        const settings = this.snapshot.get(claim.item.sourceId)?.settings;
        this.hold(
          claim.item,
          settings !== undefined && this.room(claim.item.sourceId, settings.concurrency) <= 0,
        );
      }
    } finally {
      this.claimPending = false;
      this.claimReserved = new Map();
      this.claimReservedTotal = 0;
    }
    for (const claim of claimed) this.place(claim, bySource.get(claim.item.sourceId), now);
    if (claimed.length >= limit) {
      // A full batch may have left more behind.
      this.backlog = true;
      this.claimAgain = true;
      return;
    }
    // A partial batch saw everything claimable. Unless something due was left behind a busy key
    // or a full cap, new items go back to the handoff: staying in backlog mode under steady load
    // sent every item through a claim (stored unclaimed, then updated and read back).
    // Sleep until the earliest retry or rate slot, at most one poll interval.
    const due = await this.deps.store.nextDueAt(allowed);
    // Due items that could not be taken (caps, busy keys) are a backlog new items must queue behind.
    if (due !== undefined && due <= now) {
      this.backlog = true;
      if (this.freed !== freedBefore) {
        // A slot or key freed while the claim ran (an outcome committed, say) and its wake was
        // lost: claim again now rather than at the poll, or an ordering key would move one item
        // per poll interval. Only with something due left behind, so the handoff path stays
        // free of claims.
        this.claimAgain = true;
        return;
      }
    }
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

  /**
   * How many more items a source may start: its cap counts running handlers, and items whose
   * handler is done but whose outcome is not committed yet may add at most one more cap's worth,
   * so what a crash can catch in flight stays bounded (twice the cap) without a fast handler
   * having to wait for each fsync before the next item starts.
   */
  private room(sourceId: string, concurrency: number): number {
    const running = concurrency - (this.activeBySource.get(sourceId) ?? 0);
    const held = 2 * concurrency - (this.heldBySource.get(sourceId) ?? 0);
    return Math.min(running, held, this.globalRoom());
  }

  private globalRoom(): number {
    const cap = this.options.globalConcurrency;
    return Math.min(cap - this.active, 2 * cap - (this.held.size - this.queuedCount));
  }

  private hold(item: Pick<InboxItem, "id" | "sourceId" | "orderingKey">, queued = false): void {
    const key = item.orderingKey === null ? null : keyOf(item.sourceId, item.orderingKey);
    this.held.set(item.id, { sourceId: item.sourceId, key, queued, finished: false });
    if (key !== null) this.busyKeys.add(key);
    if (queued) {
      bump(this.queuedBySource, item.sourceId, 1);
      this.queuedCount++;
      return;
    }
    this.countActive(item.sourceId);
  }

  /** An item starts to count against its source's and the global caps. */
  private countActive(sourceId: string): void {
    bump(this.heldBySource, sourceId, 1);
    bump(this.activeBySource, sourceId, 1);
    this.active++;
  }

  /** The handler is done: its cap slot is free, the item itself stays held until recorded. */
  private finish(id: string): void {
    const held = this.held.get(id);
    if (!held || held.finished || held.queued) return;
    held.finished = true;
    bump(this.activeBySource, held.sourceId, -1);
    this.active--;
    this.freed++;
    this.startAllQueued();
  }

  private release(id: string): void {
    const held = this.held.get(id);
    if (!held) return;
    if (held.queued) {
      // Taken but never started (its insert failed, or we are stopping).
      this.unqueue(held);
      this.held.delete(id);
      if (held.key !== null) this.busyKeys.delete(held.key);
      return;
    }
    this.finish(id);
    this.held.delete(id);
    bump(this.heldBySource, held.sourceId, -1);
    if (held.key !== null) this.busyKeys.delete(held.key);
    this.freed++;
    this.startAllQueued();
  }

  /** A slot freed: queued items of any source may start (the global caps are shared). */
  private startAllQueued(): void {
    if (this.queuedCount === 0) return;
    for (const sourceId of [...this.queued.keys()]) this.startQueued(sourceId);
  }

  private begin(claim: ClaimedItem, source: Source, now: number): void {
    const settings = resolveProcessing(source.options);
    let startAt = now;
    if (settings.ratePerSecond !== null) {
      startAt = this.rates.reserve(source.id, settings.ratePerSecond, now);
    }
    const run = () => {
      const task = this.process(claim, source, settings).finally(() => this.tasks.delete(task));
      this.tasks.add(task);
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
    let work: Promise<void> | undefined;
    try {
      work = this.deps.consume(item, source, { attempt, stale });
      await this.withTimeout(work, settings.handlerTimeoutMs);
      const mark =
        !stale && item.orderingKey !== null && item.eventTime !== null
          ? { key: item.orderingKey, eventTime: item.eventTime }
          : undefined;
      this.record({ ...base, result: "processed", stale, ...(mark ? { mark } : {}) });
    } catch (error) {
      const message = errorText(error);
      let outcome: ItemOutcome;
      if (error instanceof NonRetryableError || attempt >= settings.maxAttempts) {
        outcome = { ...base, result: "failed", error: message };
      } else {
        const nextAttemptAt = this.deps.clock.now() + retryDelayMs(attempt, settings);
        outcome = { ...base, result: "retry", nextAttemptAt, error: message };
      }
      // The timeout only stops waiting: the handler goes on running. Recording frees its slot and
      // lets its retry come due, so until the handler settles that would exceed the cap and could
      // run the item twice at once. Its outcome is the timeout's all the same. Once stopping,
      // nothing new starts, and stop() must not wait for a handler that may never settle.
      if (error instanceof HandlerTimeout && work)
        await Promise.race([work.catch(() => undefined), this.stopping]);
      this.record(outcome);
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
    this.finish(outcome.id);
    this.pending.push(outcome);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Outcomes of one event-loop turn share one transaction; their freed slots one claim. When
    // the intake writes in this turn too, its insert records them (see carry).
    setImmediate(() => {
      this.flushScheduled = false;
      if (!this.carrier?.writesThisTurn()) void this.flushNow();
      this.wakeForBacklog();
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
      this.afterRecorded(batch);
    });
    return this.flushing;
  }

  /** A batch of outcomes was committed (or given up on): its items are let go. */
  private afterRecorded(batch: readonly ItemOutcome[]): void {
    for (const outcome of batch) this.release(outcome.id);
    this.deps.onCompleted?.(batch);
    // A retry is stored again, due later: the claim finds it and sets the timer for it.
    if (batch.some((o) => o.result === "retry")) this.backlog = true;
    this.wakeForBacklog();
  }

  /**
   * Freed room is worth a claim only while items may be waiting in the store. Without a backlog,
   * new items reach the processor through the handoff, and a claim would find nothing: at 1,000
   * requests/s that was a claim query per completed batch, on the same thread as the inserts.
   */
  private wakeForBacklog(): void {
    if (this.backlog) this.wake();
  }
}
