import type { Clock } from "../core/clock.js";
import type { PigeonConfig } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { newId } from "../core/ids.js";
import { SLOT_LATENESS_TOLERANCE_MS, slotSpacingMs } from "../store/rate-slots.js";
import type { ClaimedDelivery, DeliveryOutcome, Store } from "../store/store.js";
import type { Attempt, Endpoint } from "../store/types.js";
import type { HttpSender, SendResult } from "./http-sender.js";
import { RetryPolicy } from "./retry-policy.js";
import { buildSignedRequest } from "./signed-request.js";

export type DispatcherConfig = Pick<
  PigeonConfig,
  | "retryScheduleMs"
  | "retryJitter"
  | "retryAfterMaxMs"
  | "requestTimeoutMs"
  | "globalConcurrency"
  | "endpointConcurrency"
  | "disableAfterMs"
  | "leaseMs"
  | "pollIntervalMs"
>;

export interface DispatcherOptions {
  /** Most rows claimed per query. */
  claimBatchSize?: number;
  /** Most outcomes written per transaction; a flush also happens at the end of every tick. */
  flushBatchSize?: number;
}

/** How long claim requests wait to share one claim. */
const CLAIM_COALESCE_MS = 2;

/**
 * How long a refill waits to share one claim while other workers claim from the same database.
 * There each claim also reads the others' leases and heartbeats, and claims contend for the same
 * rows and locks, so fewer, bigger claims leave more CPU for sending: two workers delivered 6–14 %
 * more with this wait. A lone worker claims at once: at its pace its queues run dry in about the
 * wait, and the same wait cost it 3–9 % (bench/postgres.ts).
 */
const SHARED_REFILL_COALESCE_MS = 20;

/**
 * How long outcomes wait to share a commit. On a shared database each commit costs a fixed share
 * of its CPU (the statement, its plan, the commit), so bigger groups leave more for sending there.
 * On SQLite a commit is cheap, and what a crash re-sends grows with this window (sent but not yet
 * recorded), so it stays short: the crash test bounds those duplicates.
 */
const FLUSH_DELAY_MS = { shared: 25, sqlite: 10 } as const;

/** How soon outcomes whose write failed are written again. */
const FLUSH_RETRY_MS = 1000;

/**
 * How soon a delivery comes due again when its send never started because its rate slot could not
 * be reserved (the store failed): no attempt was made, so it keeps its attempt count.
 */
const SLOT_FAILURE_RETRY_MS = 1000;

/** Retry-After is honoured for these statuses only: they are the ones that mean "slow down". */
const SLOW_DOWN_STATUSES = new Set([429, 502, 503, 504]);

interface EndpointQueue {
  endpointId: string;
  /** Sends started (including those waiting for their rate slot). */
  active: number;
  waiting: ClaimedDelivery[];
  /** Most rows held here for the endpoint, sending plus queued (see holdLimitFor). */
  holdLimit: number;
}

/**
 * A rate-limited endpoint's sends in this process take their slots one at a time, so each can be
 * held to one spacing after the previous send's actual start (see takeRateSlot).
 */
interface RatePacer {
  tail: Promise<void>;
  lastStartAt: number;
  waiting: number;
}

/** Pacers kept for endpoints that went quiet, before old ones are dropped. */
const RATE_PACERS_KEPT = 1000;

/**
 * Claims due deliveries under a lease, sends them with per-endpoint admission, and records the
 * outcomes in batched transactions.
 *
 * No head-of-line blocking: every endpoint has its own queue and limiter, and an endpoint that is
 * already at its cap is excluded from the next claim, so a hung endpoint holds only its own slots
 * while the others keep flowing. Crash safety comes from the lease: a claimed row's lease end is
 * stored as its next due time, so if this process dies, the row simply comes due again.
 */
export class Dispatcher {
  private readonly retry: RetryPolicy;
  private readonly queues = new Map<string, EndpointQueue>();
  /** Deliveries this process holds (queued or in flight), so a re-claim after a lease never doubles them. */
  private readonly owned = new Set<string>();
  /**
   * Deliveries queued again (resend, recover) while this worker still held them: their earlier
   * outcome is not yet recorded, so they are sent again once it is, rather than being dropped as
   * a re-claim of what we already hold.
   */
  private readonly sendAgain = new Map<string, ClaimedDelivery>();
  private readonly pendingOutcomes: DeliveryOutcome[] = [];
  /** Outcomes in the transaction being written now. */
  private recording = 0;
  /** A send waited for outcomes to be recorded (see mayStartSend); the next flush restarts it. */
  private waitingForRecords = false;
  /** The earliest retry this worker has recorded that was not yet due when last looked at. */
  private ownRetryAt: number | undefined;
  private readonly ratePacers = new Map<string, RatePacer>();
  private readonly claimBatchSize: number;
  private readonly flushBatchSize: number;
  private inFlight = 0;
  private running = false;
  private claiming = false;
  /** The claim loop under way, which stop() waits for before it gives back what is queued. */
  private claimLoopRun: Promise<void> | undefined;
  private claimAgain = false;
  private flushing: Promise<void> | undefined;
  private flushScheduled = false;
  private wakeTimer: NodeJS.Timeout | undefined;
  /** When the armed wake fires. */
  private wakeAt: number | undefined;
  /** The time the last claim looked for due work as of. */
  private lastClaimNow: number | undefined;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly store: Store,
    private readonly sender: HttpSender,
    private readonly config: DispatcherConfig,
    private readonly clock: Clock,
    options: DispatcherOptions = {},
  ) {
    this.retry = new RetryPolicy({
      scheduleMs: config.retryScheduleMs,
      jitter: config.retryJitter,
      retryAfterMaxMs: config.retryAfterMaxMs,
    });
    this.claimBatchSize = options.claimBatchSize ?? 1024;
    this.flushBatchSize = options.flushBatchSize ?? 512;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.wake();
  }

  /**
   * Stops claiming, waits for in-flight sends, writes their outcomes, and releases queued leases.
   * Sends still waiting for their rate slot give their rows back unsent rather than being waited
   * for: at one request a second, 32 of them held a stop for 35 s, past common grace periods.
   */
  async stop(): Promise<void> {
    this.running = false;
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    // A claim under way returns rows after this: they are queued (not sent) and released below.
    await this.claimLoopRun;
    const queued: string[] = [];
    for (const queue of this.queues.values()) {
      for (const item of queue.waiting) {
        queued.push(item.delivery.id);
        this.owned.delete(item.delivery.id);
      }
      queue.waiting.length = 0;
    }
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    await this.flush();
    if (this.pendingOutcomes.length > 0)
      console.error(
        `pigeon: ${this.pendingOutcomes.length} delivery outcomes could not be recorded before stopping; ` +
          "those deliveries come due again when their leases end",
      );
    await this.store.releaseDeliveries(queued, this.clock.now());
  }

  /** Called after new work is committed (and on a timer) so delivery starts without waiting for a poll. */
  wake(): void {
    if (!this.running) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    const run = this.claimLoop().finally(() => {
      if (this.claimLoopRun === run) this.claimLoopRun = undefined;
    });
    this.claimLoopRun = run;
  }

  get stats(): { inFlight: number; queued: number; owned: number } {
    let queued = 0;
    for (const q of this.queues.values()) queued += q.waiting.length;
    return { inFlight: this.inFlight, queued, owned: this.owned.size };
  }

  /** The endpoint's queue, its hold limit following the endpoint's current settings. */
  private queueFor(endpoint: Endpoint): EndpointQueue {
    let queue = this.queues.get(endpoint.id);
    if (!queue) {
      queue = { endpointId: endpoint.id, active: 0, waiting: [], holdLimit: this.holdLimitFor(endpoint) };
      this.queues.set(endpoint.id, queue);
    } else {
      queue.holdLimit = this.holdLimitFor(endpoint);
    }
    return queue;
  }

  /**
   * How long other workers count as live after their last claim (ClaimRequest.peerTimeoutMs): an
   * idle worker claims once per poll, so three polls, and at least 5 s so a busy machine's late
   * timers do not make a live worker look gone.
   */
  private get peerTimeoutMs(): number {
    return Math.max(5_000, 3 * this.config.pollIntervalMs);
  }

  /** What a claim may let this worker hold per endpoint at most (ClaimRequest.endpointHoldLimit). */
  private get endpointHoldLimit(): number {
    return this.config.endpointConcurrency * 3;
  }

  /**
   * How many rows one endpoint may hold here (sending plus queued): two more caps' worth queued
   * beyond what may be sent, so claims come in batches rather than one row per freed slot. A
   * shared store grants that much only while no other worker holds a lease on the endpoint (see
   * ClaimRequest.endpointHoldLimit), and never to a rate-limited endpoint: there it grants the
   * cap, so the cap is the limit here too, or every completion would ask for a refill that the
   * store then refuses, one claim statement per delivery.
   */
  private holdLimitFor(endpoint: Endpoint): number {
    const shared = this.store.kind !== "sqlite";
    return shared && endpoint.rateLimit ? this.config.endpointConcurrency : this.endpointHoldLimit;
  }

  /** Whether an endpoint holds no more than half of what it may, and so wants a refill. */
  private wantsRefill(endpointId: string): boolean {
    const queue = this.queues.get(endpointId);
    return !queue || this.heldFor(endpointId) <= queue.holdLimit / 2;
  }

  /** Rows one endpoint holds here, sending plus queued. */
  private heldFor(endpointId: string): number {
    const queue = this.queues.get(endpointId);
    return queue ? queue.active + queue.waiting.length : 0;
  }

  /**
   * What each endpoint holds here, and the endpoints left out of the next claim: those holding
   * more than half their hold limit. They have work in hand and ask for more once they fall to
   * half (send), so each endpoint is refilled in batches. Leaving them out also keeps a big
   * backlog of theirs from filling the claim's scan of the earliest due rows, which would crowd
   * out the endpoints that do need work. `wanted`: the most rows the claim could give (the claim's
   * limit never exceeds it).
   */
  private holdings(): { held: Record<string, number>; wellStocked: string[]; wanted: number } {
    const held: Record<string, number> = {};
    const wellStocked: string[] = [];
    // What the claim could give: the endpoints held here up to their hold limits, and one hold
    // limit's worth for endpoints not held here yet. A worker holding nothing cannot tell how many
    // endpoints have work, so it asks for all it may hold: asked for one hold limit, its first
    // claim found a row or two for each of many endpoints, and with slow endpoints each further
    // step waited for those to finish (measured: 3 % slower drains to 100 slow endpoints).
    let wanted = this.queues.size === 0 ? Number.POSITIVE_INFINITY : this.endpointHoldLimit;
    for (const [id, queue] of this.queues) {
      const n = this.heldFor(id);
      held[id] = n;
      if (this.wantsRefill(id)) wanted += Math.max(0, queue.holdLimit - n);
      else wellStocked.push(id);
    }
    return { held, wellStocked, wanted };
  }

  /** Whether an endpoint that asked for a refill since the last claim began still needs one. */
  private refillStillWanted(): boolean {
    for (const id of this.refillWanted) if (this.wantsRefill(id)) return true;
    return false;
  }

  /**
   * How many rows the next claim may take: what this process may hold (twice its cap) less what it
   * holds, or none while it has half its cap's worth queued that wait only for one of its own send
   * slots (their endpoint could take another send). Those rows keep every slot busy as the sends in
   * flight finish, so a claim now would only queue more behind them, and one claim per round trip
   * would take just what finished meanwhile: with many endpoints, each far from its own hold limit,
   * every completion asked for a refill, and one worker made 450 claims of ~50 rows for 20,000
   * deliveries. Rows of an endpoint at its cap (a hung one, or one waiting for rate slots) do not
   * count: they could hold claims back while the other endpoints run dry.
   */
  private claimRoom(): number {
    const global = this.config.globalConcurrency;
    let queued = 0;
    let waitingForProcessSlots = 0;
    for (const q of this.queues.values()) {
      queued += q.waiting.length;
      if (q.active < this.config.endpointConcurrency) waitingForProcessSlots += q.waiting.length;
    }
    if (waitingForProcessSlots >= global / 2) return 0;
    return Math.max(0, global * 2 - this.inFlight - queued);
  }

  private async claimLoop(): Promise<void> {
    // Nothing to claim for: the sends that hold the room will ask again as they finish (send).
    if (this.claimRoom() === 0) return;
    this.claiming = true;
    let tookAny = true;
    try {
      do {
        this.claimAgain = false;
        while (this.running) {
          const room = this.claimRoom();
          if (room === 0) break;
          const now = this.clock.now();
          this.lastClaimNow = now;
          // This claim sees every holding as of now, so it answers the refill requests made so far.
          this.refillWanted.clear();
          const { held, wellStocked, wanted } = this.holdings();
          // No more than the claim could give: a shared store reads `limit` due rows in time order
          // to find the endpoints to serve, and with other workers' endpoints among them it
          // passed over several rows for each one read (see claim.ts), however few it could take.
          const limit = Math.min(room, this.claimBatchSize, wanted);
          const claimed = await this.store.claimDueDeliveries({
            now,
            limit,
            leaseUntil: now + this.config.leaseMs,
            excludeEndpointIds: wellStocked,
            endpointConcurrency: this.config.endpointConcurrency,
            endpointHoldLimit: this.endpointHoldLimit,
            heldByEndpoint: held,
            peerTimeoutMs: this.peerTimeoutMs,
          });
          tookAny = claimed.length > 0;
          for (const item of claimed) {
            if (this.owned.has(item.delivery.id)) {
              if (!item.wasLeased) this.sendAgain.set(item.delivery.id, item);
              continue;
            }
            this.owned.add(item.delivery.id);
            this.queueFor(item.endpoint).waiting.push(item);
          }
          // Stopped during the claim: its rows stay queued, unsent, for stop() to give back.
          if (!this.running) break;
          for (const queue of this.queues.values()) this.pump(queue);
          // Only a full claim suggests more is due right now. A short one took all the room it had
          // (or all that was due): claiming again at once would take just the few rows freed
          // meanwhile, one statement each. Freed room asks for the next claim (send), as do new
          // work (wake) and the poll.
          if (claimed.length < limit) break;
        }
        // Refill requests made while claiming were answered by that claim unless the endpoint
        // has fallen to half again since. After a claim that found nothing they wait (below).
      } while (
        this.running &&
        (this.claimAgain || (tookAny && this.refillStillWanted())) &&
        this.claimRoom() > 0
      );
    } catch (error) {
      console.error("pigeon: claiming deliveries failed; retrying on the next poll", error);
    } finally {
      this.claiming = false;
    }
    // A claim that found nothing for endpoints that want more (others' leases fill their caps, or
    // the backlog is gone) would find nothing again a few milliseconds later: the refills its
    // sends asked for meanwhile wait the refill delay instead of claiming at once. Claiming at once,
    // four workers draining to slow endpoints made a third of their claims empty, some 1–6 ms apart.
    if (!tookAny && this.running && this.refillStillWanted()) this.scheduleClaim(this.refillDelayMs());
    await this.scheduleNextWake();
  }

  /**
   * Arms the timer for work that comes due later (retries, expired leases) and for the poll that
   * catches what another process queued. Work due already but not claimed belongs to endpoints at
   * their cap: their completions will ask for the next claim.
   *
   * While sends are in flight their completions drive the claims, so the store is not asked when
   * work next comes due: the timer covers the earliest retry this worker recorded, and the poll
   * the rest (another worker's retries are that worker's to wake for; a dead worker's leases come
   * back within a poll of expiring). Why: on a shared database the question is a statement per
   * claim loop, one every few milliseconds per busy worker, and its answer is the poll anyway
   * whenever due rows wait behind a cap (two workers draining to endpoints that answer at once:
   * 0.093–0.098 against 0.110–0.112 ms of CPU per delivery). Once idle, or when its earliest own
   * retry has come due, the worker asks the store as before.
   */
  private async scheduleNextWake(): Promise<void> {
    if (!this.running) return;
    let delay = this.config.pollIntervalMs;
    const now = this.clock.now();
    if (this.inFlight > 0 && (this.ownRetryAt === undefined || this.ownRetryAt > now)) {
      if (this.ownRetryAt !== undefined) delay = Math.min(delay, this.ownRetryAt - now);
    } else {
      this.ownRetryAt = undefined;
      try {
        const next = await this.store.nextDueAt();
        const at = this.clock.now();
        if (next !== undefined && next > at) delay = Math.min(delay, next - at);
        // Due now, but not when the last claim looked: nothing else asks for it before the poll.
        // A timer fires by the event loop's clock, which can trail the wall clock the due times are
        // in by a long turn, so the claim a wake for a retry starts can come just too early (CI saw
        // a 100 ms retry wait for the 20 s poll, a send to a hung endpoint keeping the worker busy).
        else if (next !== undefined && this.lastClaimNow !== undefined && next > this.lastClaimNow) delay = 0;
      } catch {
        // The poll interval is the safety net when the store cannot answer.
      }
    }
    this.armWake(delay);
  }

  private armWake(delayMs: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer);
    const delay = Math.max(delayMs, 5);
    this.wakeAt = this.clock.now() + delay;
    this.wakeTimer = setTimeout(() => {
      this.wakeAt = undefined;
      this.wake();
    }, delay);
    this.wakeTimer.unref?.();
  }

  /**
   * A retry just recorded comes due before the armed wake: wake for it. The claim loop that
   * followed its send armed the timer before the retry was recorded (outcomes are committed a
   * few milliseconds later, in batches), so without this it waited for a later claim or the poll.
   */
  private wakeForOwnRetry(): void {
    if (!this.running || this.ownRetryAt === undefined) return;
    if (this.wakeAt !== undefined && this.ownRetryAt >= this.wakeAt) return;
    this.armWake(this.ownRetryAt - this.clock.now());
  }

  /**
   * Sent but not yet recorded: what a crash now would send again. Sends in flight are at most
   * the global cap, and so are outcomes waiting for their commit (see mayStartSend), so a crash
   * re-sends at most twice the cap, however slow the commits are at the time.
   */
  private get unrecorded(): number {
    return this.inFlight + this.pendingOutcomes.length + this.recording;
  }

  private mayStartSend(): boolean {
    const cap = this.config.globalConcurrency;
    if (this.inFlight < cap && this.unrecorded < 2 * cap) return true;
    if (this.inFlight < cap) this.waitingForRecords = true;
    return false;
  }

  /**
   * A shared cap freed room: any endpoint's queue may start a send. The walk ends at the first
   * queue the shared cap stops (the queues after it could not start one either): at the cap, a
   * worker sending to 100 slow endpoints walked all of them on every completion, and the walk's
   * entry arrays were a quarter of the bytes the worker allocated (allocation sampling, bench/
   * postgres.ts --slow-endpoints).
   */
  private pumpAll(): void {
    for (const queue of this.queues.values()) if (this.pump(queue)) return;
  }

  /** Starts what the endpoint's queue may; true when the shared cap (not the endpoint's) stopped it. */
  private pump(queue: EndpointQueue): boolean {
    // Stopping: what is queued is given back unsent (stop), not started now.
    if (!this.running) return false;
    let stoppedByShared = false;
    while (queue.waiting.length > 0 && queue.active < this.config.endpointConcurrency) {
      if (!this.mayStartSend()) {
        stoppedByShared = true;
        break;
      }
      const item = queue.waiting.shift()!;
      queue.active += 1;
      this.inFlight += 1;
      void this.send(item, queue);
    }
    if (queue.waiting.length === 0 && queue.active === 0) this.queues.delete(queue.endpointId);
    return stoppedByShared;
  }

  /**
   * Waits for the endpoint's next rate slot and resolves with the send's start time (now, for an
   * endpoint without a limit), or undefined once stopping. Slots are reserved in the store so they
   * hold across workers; this process's sends of one endpoint take their slots in turn.
   */
  private async waitForRateSlot(item: ClaimedDelivery): Promise<number | undefined> {
    const rate = item.endpoint.rateLimit;
    if (rate === null || rate <= 0) return this.clock.now();
    const pacer = this.pacerFor(item.endpoint.id);
    pacer.waiting += 1;
    const turn = pacer.tail.then(() => this.takeRateSlot(item.endpoint.id, rate, pacer));
    pacer.tail = turn.then(
      () => undefined,
      () => undefined,
    );
    try {
      return await turn;
    } finally {
      pacer.waiting -= 1;
    }
  }

  /**
   * A slot is never taken sooner than one spacing after this process's last actual start. Timers
   * fire late on a busy event loop; without this, a send that woke late and the next one on time
   * would start closer than the spacing, and enough of those bunch past the limit at the receiver
   * (seen under a full test run on 2 cores). A send that wakes later than the tolerance gives its
   * slot up and takes a new one, which bounds how far another worker's starts can bunch with ours.
   */
  private async takeRateSlot(
    endpointId: string,
    rate: number,
    pacer: RatePacer,
  ): Promise<number | undefined> {
    for (;;) {
      if (!this.running) return undefined;
      const notBefore = Math.max(this.clock.now(), pacer.lastStartAt + slotSpacingMs(rate));
      const slot = await this.store.reserveSendSlot(endpointId, rate, notBefore);
      // A timer may fire a millisecond early; starting before the slot would break the spacing.
      for (let wait = slot - this.clock.now(); wait > 0; wait = slot - this.clock.now())
        await new Promise((resolve) => setTimeout(resolve, wait));
      if (!this.running) return undefined;
      const now = this.clock.now();
      if (now - slot <= SLOT_LATENESS_TOLERANCE_MS) {
        pacer.lastStartAt = now;
        return now;
      }
    }
  }

  private pacerFor(endpointId: string): RatePacer {
    let pacer = this.ratePacers.get(endpointId);
    if (!pacer) {
      if (this.ratePacers.size >= RATE_PACERS_KEPT) {
        // An idle pacer more than a second old no longer holds anyone back.
        const stale = this.clock.now() - 1000;
        for (const [id, p] of this.ratePacers)
          if (p.waiting === 0 && p.lastStartAt < stale) this.ratePacers.delete(id);
      }
      pacer = { tail: Promise.resolve(), lastStartAt: Number.NEGATIVE_INFINITY, waiting: 0 };
      this.ratePacers.set(endpointId, pacer);
    }
    return pacer;
  }

  private async send(item: ClaimedDelivery, queue: EndpointQueue): Promise<void> {
    let outcome: DeliveryOutcome;
    try {
      if (item.endpoint.disabled) outcome = this.skipDisabled(item);
      else {
        let startedAt: number | undefined;
        try {
          startedAt = await this.waitForRateSlot(item);
        } catch (error) {
          // The store could not reserve a slot (a dropped connection, a failover): nothing was
          // sent, so no attempt is recorded and no retry used up; the row comes due again soon.
          console.error(`pigeon: reserving a send slot for delivery ${item.delivery.id} failed`, error);
        }
        outcome =
          startedAt === undefined
            ? this.notSent(item, this.running ? this.clock.now() + SLOT_FAILURE_RETRY_MS : this.clock.now())
            : await this.attempt(item, startedAt);
      }
    } catch (error) {
      // A bug in building the request must not lose the delivery: record it and retry later.
      const message = errorMessage(error);
      outcome = this.outcomeFor(item, this.clock.now(), {
        ok: false,
        responseBody: message,
        responseHeaders: {},
        durationMs: 0,
        errorCode: "other",
        errorMessage: message,
      });
    }
    this.pendingOutcomes.push(outcome);
    const wasAtGlobalCap = this.inFlight >= this.config.globalConcurrency;
    queue.active -= 1;
    this.inFlight -= 1;
    this.scheduleFlush();
    this.pump(this.queues.get(item.endpoint.id) ?? queue);
    // At the global cap other endpoints' queues may be waiting for exactly this slot.
    if (wasAtGlobalCap) this.pumpAll();
    if (this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
    // Freed capacity: claim more once this endpoint holds half of what it may, so claims come
    // in batches; a claim per completion would cost more than the sends (on a shared database,
    // where nothing is queued ahead, that was one claim per delivery).
    if (this.wantsRefill(item.endpoint.id)) this.requestRefill(item.endpoint.id);
  }

  private claimRequested = false;
  private newWorkWanted = false;
  /** Endpoints that fell to half their hold limit since the current (or last) claim read the holdings. */
  private readonly refillWanted = new Set<string>();

  /** Asks for a claim soon because new work may be due (NOTIFY from another process). */
  requestClaim(): void {
    this.newWorkWanted = true;
    this.scheduleClaim();
  }

  /**
   * Asks for a claim soon because an endpoint has room. While a claim is under way the request
   * waits for it to end (claimLoop): the claim may already have refilled the endpoint, and
   * claiming again at once would take only what was sent during its round trip.
   */
  private requestRefill(endpointId: string): void {
    this.refillWanted.add(endpointId);
    this.scheduleClaim(this.refillDelayMs());
  }

  /** How long a refill waits to share one claim: longer while other workers share the database. */
  private refillDelayMs(): number {
    const peers = this.store.livePeerCount?.() ?? 0;
    return peers > 0 ? SHARED_REFILL_COALESCE_MS : CLAIM_COALESCE_MS;
  }

  /**
   * Requests within CLAIM_COALESCE_MS share one claim: completions of the same moment, and
   * NOTIFY wake-ups from other processes publishing at a high rate.
   */
  private scheduleClaim(delayMs = CLAIM_COALESCE_MS): void {
    if (!this.running || this.claimRequested) return;
    this.claimRequested = true;
    setTimeout(() => {
      this.claimRequested = false;
      if (this.claiming && !this.newWorkWanted) return;
      // Asked for by refills only, and a claim since has answered them all (each endpoint that
      // asked holds more than half its hold limit again): a claim now could bring only endpoints
      // not held here, which, with other workers sharing the endpoints, their shares keep from
      // this one. Four workers draining to 8 endpoints made 90–115 of their 505–542 claims this
      // way, all empty (each ~2.5 ms of PostgreSQL's CPU). New work (NOTIFY) and the poll still claim.
      if (!this.newWorkWanted && !this.refillStillWanted()) return;
      this.newWorkWanted = false;
      this.wake();
    }, delayMs);
  }

  /** Given back unsent (stopping, or no rate slot to be had): due at `dueAt`, attempts unchanged. */
  private notSent(item: ClaimedDelivery, dueAt: number): DeliveryOutcome {
    return {
      deliveryId: item.delivery.id,
      endpointId: item.endpoint.id,
      result: "retry",
      nextAttemptAt: dueAt,
    };
  }

  private skipDisabled(item: ClaimedDelivery): DeliveryOutcome {
    return { deliveryId: item.delivery.id, endpointId: item.endpoint.id, result: "failed" };
  }

  /** `startedAt`: the time the send got its rate slot, which the pacing spaces (and records). */
  private async attempt(item: ClaimedDelivery, startedAt: number): Promise<DeliveryOutcome> {
    const request = buildSignedRequest({
      webhookId: item.message.id,
      payload: item.message.payload,
      endpoint: item.endpoint,
      now: startedAt,
      defaultTimeoutMs: this.config.requestTimeoutMs,
    });
    const result = await this.sender.send(request);
    return this.outcomeFor(item, startedAt, result);
  }

  private outcomeFor(item: ClaimedDelivery, startedAt: number, result: SendResult): DeliveryOutcome {
    const now = this.clock.now();
    const attemptsMade = item.delivery.attempts + 1;
    const attempt: Attempt = {
      id: newId("atmpt", startedAt),
      msgId: item.message.id,
      endpointId: item.endpoint.id,
      deliveryId: item.delivery.id,
      url: item.endpoint.url,
      succeeded: result.ok,
      responseStatusCode: result.status ?? 0,
      response: result.ok || result.status !== undefined ? result.responseBody : (result.errorMessage ?? ""),
      responseDurationMs: Math.round(result.durationMs),
      errorCode: result.ok ? null : (result.errorCode ?? "other"),
      triggerType: item.delivery.manual ? 1 : 0,
      createdAt: startedAt,
    };
    const base = { deliveryId: item.delivery.id, endpointId: item.endpoint.id, attempt };
    if (result.ok) return { ...base, result: "succeeded" };
    if (result.status === 410) {
      return { ...base, result: "failed", disableEndpoint: { reason: "gone" } };
    }
    const failingSince = item.endpoint.failingSince ?? startedAt;
    const disable =
      this.config.disableAfterMs > 0 && now - failingSince >= this.config.disableAfterMs
        ? { reason: "failing" }
        : undefined;
    const retryAfter =
      result.status !== undefined && SLOW_DOWN_STATUSES.has(result.status) ? result.retryAfterMs : undefined;
    const delay = disable ? undefined : this.retry.nextDelayMs(attemptsMade, retryAfter);
    if (delay === undefined)
      return { ...base, result: "failed", ...(disable ? { disableEndpoint: disable } : {}) };
    return { ...base, result: "retry", nextAttemptAt: now + delay };
  }

  private scheduleFlush(): void {
    if (this.pendingOutcomes.length >= this.flushBatchSize) {
      void this.flush();
      return;
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Group commit: outcomes of the next few milliseconds share one durable transaction. Only
    // the record waits; sending goes on, and a crash meanwhile just re-sends those deliveries.
    setTimeout(
      () => {
        this.flushScheduled = false;
        void this.flush();
      },
      this.store.kind === "sqlite" ? FLUSH_DELAY_MS.sqlite : FLUSH_DELAY_MS.shared,
    );
  }

  private async resendIfQueuedAgain(deliveryId: string): Promise<void> {
    const again = this.sendAgain.get(deliveryId);
    if (!again) return;
    this.sendAgain.delete(deliveryId);
    // The claim that found it queued again leased it to this worker again, so the outcome just
    // recorded set the row's state (the store cannot tell that lease from the first) and the
    // requeue is gone from the row. Queue it again in the store rather than sending it from here:
    // an outcome sets a row's state only while the row is still leased (completeDeliveries), so
    // a send from here would have its outcome (a failure to retry) ignored. Claimed as usual, it
    // is sent once more.
    try {
      await this.store.requeueDelivery(again.delivery, this.clock.now());
    } catch (error) {
      // Not thrown on: the rest of the batch still has to be let go of (flush).
      console.error("pigeon: re-queueing a resent delivery failed", error);
      return;
    }
    // Shutting down: it stays due, for whoever runs next.
    if (this.running) this.requestClaim();
  }

  /** Writes buffered outcomes; one flush at a time, so their order on disk is their order here. */
  private async flush(): Promise<void> {
    while (this.flushing) await this.flushing;
    if (this.pendingOutcomes.length === 0) return;
    const batch = this.pendingOutcomes.splice(0, this.pendingOutcomes.length);
    this.recording = batch.length;
    this.flushing = (async () => {
      let recorded = false;
      try {
        await this.store.completeDeliveries(batch, this.clock.now());
        recorded = true;
        this.recording = 0;
        for (const outcome of batch) {
          if (outcome.nextAttemptAt !== undefined && outcome.result === "retry")
            this.ownRetryAt = Math.min(this.ownRetryAt ?? Number.POSITIVE_INFINITY, outcome.nextAttemptAt);
          this.owned.delete(outcome.deliveryId);
          await this.resendIfQueuedAgain(outcome.deliveryId);
        }
        this.wakeForOwnRetry();
      } catch (error) {
        if (recorded) {
          console.error("pigeon: re-queueing a resent delivery failed", error);
        } else {
          // Keep them: a later flush tries again; if we die first, the leases bring them back.
          this.recording = 0;
          this.pendingOutcomes.unshift(...batch);
          console.error("pigeon: recording delivery outcomes failed; will retry", error);
        }
      } finally {
        this.flushing = undefined;
      }
      // Sends may be waiting for these records, so a failed write is tried again on its own.
      // Not once stopped: stop() reports what is left, and the leases bring those rows back.
      if (!recorded && this.running) setTimeout(() => void this.flush(), FLUSH_RETRY_MS);
      if (this.waitingForRecords) {
        this.waitingForRecords = false;
        this.pumpAll();
      }
    })();
    await this.flushing;
  }
}
