import type { Page, PageQuery } from "../../store/types.js";
import type { ClaimedItem, InboxItem, InsertOutcome, ItemOutcome, NewInboxItem, Source } from "../types.js";
import { handedOff } from "./inbox-rows.js";
import type {
  Handoff,
  InboxClaim,
  InboxQuery,
  InboxStore,
  OutcomeBatch,
  SourceStats,
  VerifyFailureTally,
} from "./inbox-store.js";
import { InboxThread } from "./inbox-thread-client.js";
import type { ThreadInsertOutcome } from "./thread-protocol.js";

/**
 * How long outcomes wait for an insert to ride along with, and how recent the last insert must be
 * for one to be expected. Each message to the thread wakes it and then the event loop for the
 * answer, and a wake-up costs about 50–90 µs of CPU on a small VM: at 1,000 requests/s, outcomes
 * sent on their own were a third of the messages and a commit of their own each.
 */
const OUTCOME_RIDE_MS = 2;
const INSERTS_ARRIVING_MS = 5;

interface WaitingOutcomes extends OutcomeBatch {
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The SQLite inbox, run on a thread of its own with its own connection to the file.
 *
 * Why: intake is CPU-bound on the event loop, and about a third of that was SQLite (inserts with
 * their indexes, the processor's claims and outcome updates). On the thread that work runs on
 * another core while the event loop parses, verifies and answers requests. Durability is the
 * SqliteInboxStore's, unchanged: a call resolves once its commit is on disk.
 *
 * The processor's bookkeeping stays on the main thread, so the intake asks the handoff which new
 * items it takes before posting the batch (in item order, as the insert itself would), and gives
 * back those the insert did not store as new (duplicates, deleted sources, a failed write).
 *
 * Every other method is posted as is. Calls run in the order they are made. The file's writers
 * (this thread, the engine's store on the main thread) share SQLite's write lock; each
 * transaction here is short, and a writer that finds it taken waits (busy_timeout).
 */
export class ThreadedInboxStore implements InboxStore {
  readonly kind = "sqlite" as const;
  private thread: InboxThread | undefined;
  private handle: Promise<number> | undefined;
  private waitingOutcomes: WaitingOutcomes[] = [];
  private outcomeTimer: NodeJS.Timeout | undefined;
  private lastInsertAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly file: string) {}

  private async call<T>(method: string, ...args: unknown[]): Promise<T> {
    const thread = this.threadOpen();
    const handle = await this.handle!;
    return thread.call<T>(method, [handle, ...args]);
  }

  /** The thread, with this inbox open on it (again, if the last thread died). */
  private threadOpen(): InboxThread {
    if (!this.thread?.alive) {
      this.thread = InboxThread.get();
      this.handle = this.thread.call<number>("open", [this.file]);
      this.handle.catch(() => undefined);
    }
    return this.thread;
  }

  start(): Promise<void> {
    return this.call("start");
  }

  async close(): Promise<void> {
    await this.sendWaitingOutcomes().catch(() => undefined);
    if (!this.thread?.alive || !this.handle) return;
    const thread = this.thread;
    const handle = await this.handle.catch(() => undefined);
    this.thread = undefined;
    this.handle = undefined;
    if (handle !== undefined) await thread.call("close", [handle]);
  }

  createSource(source: Source): Promise<Source> {
    return this.call("createSource", source);
  }

  getSource(idOrUid: string): Promise<Source | undefined> {
    return this.call("getSource", idOrUid);
  }

  listSources(query: PageQuery): Promise<Page<Source>> {
    return this.call("listSources", query);
  }

  allSources(): Promise<Source[]> {
    return this.call("allSources");
  }

  updateSource(source: Source): Promise<Source> {
    return this.call("updateSource", source);
  }

  deleteSource(id: string): Promise<void> {
    return this.call("deleteSource", id);
  }

  addVerifyFailures(tallies: VerifyFailureTally[]): Promise<void> {
    return this.call("addVerifyFailures", tallies);
  }

  sourceStats(sourceId: string): Promise<SourceStats> {
    return this.call("sourceStats", sourceId);
  }

  async insertItems(items: NewInboxItem[], handoff?: Handoff): Promise<InsertOutcome[]> {
    if (items.length === 0) return [];
    const takes = handoff ? items.map((item) => handoff.take(item)) : null;
    const riding = this.takeWaitingOutcomes();
    this.lastInsertAt = performance.now();
    let reply: { outcomes: ThreadInsertOutcome[]; untaken: string[] };
    try {
      const settled: OutcomeBatch[] = riding.map(({ outcomes, now }) => ({ outcomes, now }));
      reply = await this.call("insertItems", items, takes, handoff?.leaseUntil ?? 0, settled);
    } catch (error) {
      items.forEach((item, i) => {
        if (takes?.[i]) handoff?.untake(item.id);
      });
      for (const waiting of riding) waiting.reject(error);
      throw error;
    }
    // Counted from the answer too: the processor records outcomes after it, and under load the
    // round trip alone can outlast INSERTS_ARRIVING_MS.
    this.lastInsertAt = performance.now();
    for (const waiting of riding) waiting.resolve();
    for (const id of reply.untaken) handoff?.untake(id);
    return reply.outcomes.map((outcome, i): InsertOutcome => {
      if (outcome.status !== "received") return outcome;
      if (outcome.newestProcessedTime === undefined) return { id: outcome.id, status: "received" };
      const newest = outcome.newestProcessedTime;
      return {
        id: outcome.id,
        status: "received",
        claimed: handedOff(
          items[i]!,
          handoff!.leaseUntil,
          newest === null ? undefined : { newest_event_time: newest },
        ),
      };
    });
  }

  claimItems(claim: InboxClaim): Promise<ClaimedItem[]> {
    return this.call<ClaimedItem[]>("claimItems", claim).then(withBuffers);
  }

  /**
   * While requests are arriving, outcomes ride with the next insert (one message, one commit),
   * waiting at most OUTCOME_RIDE_MS for it; otherwise they go at once.
   */
  completeItems(outcomes: ItemOutcome[], now: number): Promise<void> {
    if (outcomes.length === 0) return Promise.resolve();
    if (performance.now() - this.lastInsertAt > INSERTS_ARRIVING_MS)
      return this.call("completeItems", outcomes, now);
    return new Promise((resolve, reject) => {
      this.waitingOutcomes.push({ outcomes, now, resolve, reject });
      this.outcomeTimer ??= setTimeout(() => this.sendWaitingOutcomes(), OUTCOME_RIDE_MS);
    });
  }

  private takeWaitingOutcomes(): WaitingOutcomes[] {
    clearTimeout(this.outcomeTimer);
    this.outcomeTimer = undefined;
    return this.waitingOutcomes.splice(0);
  }

  /** No insert came in time: the outcomes go on their own, each batch with its own time. */
  private sendWaitingOutcomes(): Promise<void> {
    const waiting = this.takeWaitingOutcomes();
    if (waiting.length === 0) return Promise.resolve();
    const sent = waiting.map((w) => this.call("completeItems", w.outcomes, w.now).then(w.resolve, w.reject));
    return Promise.all(sent).then(() => undefined);
  }

  releaseItems(ids: string[], now: number): Promise<void> {
    return this.call("releaseItems", ids, now);
  }

  nextDueAt(sourceIds: string[] | null): Promise<number | undefined> {
    return this.call("nextDueAt", sourceIds);
  }

  listItems(sourceId: string, query: InboxQuery): Promise<Page<InboxItem>> {
    return this.call<Page<InboxItem>>("listItems", sourceId, query).then((page) => ({
      ...page,
      data: page.data.map(itemWithBuffer),
    }));
  }

  getItem(sourceId: string, itemId: string): Promise<InboxItem | undefined> {
    return this.call<InboxItem | undefined>("getItem", sourceId, itemId).then((item) =>
      item ? itemWithBuffer(item) : undefined,
    );
  }

  requeueItem(sourceId: string, itemId: string, now: number): Promise<boolean> {
    return this.call("requeueItem", sourceId, itemId, now);
  }
}

/** A Buffer arrives from another thread as a plain Uint8Array; callers expect a Buffer. */
function itemWithBuffer(item: InboxItem): InboxItem {
  const body = item.body as Uint8Array;
  return Buffer.isBuffer(body)
    ? item
    : { ...item, body: Buffer.from(body.buffer, body.byteOffset, body.byteLength) };
}

function withBuffers(claims: ClaimedItem[]): ClaimedItem[] {
  return claims.map((c) => ({ ...c, item: itemWithBuffer(c.item) }));
}
