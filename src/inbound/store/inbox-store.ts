import type { Page, PageQuery } from "../../store/types.js";
import type {
  ClaimedItem,
  InboxItem,
  InboxStatus,
  InsertOutcome,
  ItemOutcome,
  NewInboxItem,
  Source,
} from "../types.js";

/**
 * Persistence of the receiving side: sources, the inbox and ordering marks. Promise-returning so
 * a PostgreSQL implementation fits beside the SQLite one; nothing here knows HTTP.
 */
export interface InboxStore {
  readonly kind: "sqlite" | "postgres";
  /** Starts background upkeep (SQLite: checkpoints off the event loop). Intake works without it. */
  start(): Promise<void>;
  /** Stops the upkeep and releases what the inbox holds besides the database connection. */
  close(): Promise<void>;

  // Sources. `idOrUid` accepts the `src_` id or the caller's uid.
  createSource(source: Source): Promise<Source>;
  getSource(idOrUid: string): Promise<Source | undefined>;
  listSources(query: PageQuery): Promise<Page<Source>>;
  /** Every source (they are few); the processor reads their settings from this. */
  allSources(): Promise<Source[]>;
  updateSource(source: Source): Promise<Source>;
  /** Deletes the source with its inbox and ordering marks. */
  deleteSource(id: string): Promise<void>;
  /** Adds to the per-source verification failure counters. */
  addVerifyFailures(tallies: VerifyFailureTally[]): Promise<void>;
  sourceStats(sourceId: string): Promise<SourceStats>;

  /**
   * Inserts requests in one transaction (one fsync). An item whose event id the source already
   * has is stored as a `duplicate` of the first copy; a unique index decides, so concurrent
   * copies cannot both be `received`. Outcomes are in input order.
   */
  insertItems(items: NewInboxItem[], handoff?: Handoff, carry?: OutcomeCarry): Promise<InsertOutcome[]>;

  /**
   * Takes due items (`received`, or `processing` whose lease ran out) under a lease ending at
   * `leaseUntil`: the lease end becomes the item's next due time, so an item whose worker died
   * simply comes due again.
   */
  claimItems(claim: InboxClaim): Promise<ClaimedItem[]>;
  /** Records outcomes (and raises ordering marks) in one transaction. */
  completeItems(outcomes: ItemOutcome[], now: number): Promise<void>;
  /** Gives back items claimed but not started (shutdown), so they need not wait out their lease. */
  releaseItems(ids: string[], now: number): Promise<void>;
  /** The earliest next due time among waiting items of these sources (all when null). */
  nextDueAt(sourceIds: string[] | null): Promise<number | undefined>;

  listItems(sourceId: string, query: InboxQuery): Promise<Page<InboxItem>>;
  getItem(sourceId: string, itemId: string): Promise<InboxItem | undefined>;
  /** Queues a failed or stale item again with fresh attempts; false when it is not in such a state. */
  requeueItem(sourceId: string, itemId: string, now: number): Promise<boolean>;
}

/**
 * Lets the processor take new items in the insert itself: an item it takes is stored as
 * `processing` under a lease, exactly as a claim would leave it, so a fresh item reaches its
 * handler without a claim query and a second commit. Used from inside the insert transaction,
 * so both callbacks must be synchronous.
 */
export interface Handoff {
  leaseUntil: number;
  /** Whether the processor takes this new item now; if so it already counts it as its own. */
  take(item: NewInboxItem): boolean;
  /** A taken item was not stored as new after all (a duplicate, or the write failed). */
  untake(id: string): void;
}

/**
 * Outcomes of finished items that ride with an insert: recorded as completeItems would record
 * them, and on SQLite in the insert's own transaction, so a turn in which items both arrive and
 * finish costs one commit, not two. Exactly one of the callbacks is called, once the outcomes are
 * committed (they need no fsync) or have failed; a failure never fails the insert.
 */
export interface OutcomeCarry {
  readonly outcomes: ItemOutcome[];
  readonly now: number;
  recorded(): void;
  failed(error: unknown): void;
}

export interface InboxClaim {
  now: number;
  limit: number;
  leaseUntil: number;
  /** Only these sources (null: every source). */
  sourceIds: string[] | null;
  /** Sources at their concurrency cap or out of rate budget. */
  excludeSourceIds: string[];
  /** Most items to take per source (what its cap leaves room for); absent: no cap. */
  roomBySource: Record<string, number>;
  /**
   * Ordering keys in flight (`sourceId` + "\u0000" + key): an item of such a key is not taken, and
   * of one key at most the oldest due item is, so one key is processed one item at a time.
   */
  busyKeys: string[];
  /**
   * Items the caller already holds. Normally their lease keeps them out; this also covers a
   * lease that ran out while the caller was still on the item (a stalled process), so one
   * process never hands the same item out twice.
   */
  heldIds: string[];
}

export interface InboxQuery extends PageQuery {
  status?: InboxStatus | undefined;
}

export interface VerifyFailureTally {
  sourceId: string;
  count: number;
  lastAt: number;
  lastCode: string;
}

export interface SourceStats {
  verifyFailures: number;
  lastVerifyFailureAt: number | null;
  lastVerifyFailureCode: string | null;
  counts: Record<InboxStatus, number>;
}

export function keyOf(sourceId: string, orderingKey: string): string {
  return `${sourceId}\u0000${orderingKey}`;
}
