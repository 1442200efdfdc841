import { errors } from "../../core/errors.js";
import type { SqliteDatabase } from "../../store/sqlite/database.js";
import { SqliteStatements } from "../../store/sqlite/statements.js";
import type { Page, PageQuery } from "../../store/types.js";
import {
  type ClaimedItem,
  INBOX_STATUSES,
  type InsertOutcome,
  type ItemOutcome,
  type NewInboxItem,
  type Source,
} from "../types.js";
import { BackgroundCheckpointer } from "./checkpointer.js";
import {
  handedOff,
  ITEM_COLUMNS,
  itemFromRow,
  itemParams,
  pickClaimable,
  type Row,
  sourceFromRow,
  sourceStatsFromRows,
  sourceToRow,
} from "./inbox-rows.js";
import {
  type Handoff,
  type InboxClaim,
  type InboxQuery,
  type InboxStore,
  keyOf,
  type OutcomeCarry,
  type SourceStats,
  type VerifyFailureTally,
} from "./inbox-store.js";
import { UnsyncedCommitError, WalSync } from "./wal-sync.js";

function errorCode(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

const INSERT_ITEM = `INSERT INTO inbox_items (${ITEM_COLUMNS.join(", ")})
  VALUES (${ITEM_COLUMNS.map(() => "?").join(", ")})`;
/** The first copy of an event takes its (source, event id) slot; the unique index refuses a second. */
const INSERT_FIRST_COPY = `${INSERT_ITEM} ON CONFLICT (source_id, dedupe_key) DO NOTHING`;

/**
 * A source's newest items of every status: the newest ids of each status from inbox_source_status
 * (source_id, status, id), merged, then their rows. The schema keeps no (source_id, id) index: each
 * insert would pay for it, and listing is rare (see migration 3).
 */
const listAllStatuses = (paged: boolean) => `SELECT * FROM inbox_items WHERE id IN (
    SELECT id FROM (${INBOX_STATUSES.map(
      (status) => `SELECT id FROM (SELECT id FROM inbox_items INDEXED BY inbox_source_status
        WHERE source_id = @source AND status = '${status}' ${paged ? "AND id < @before" : ""}
        ORDER BY id DESC LIMIT @n)`,
    ).join(" UNION ALL ")}) ORDER BY id DESC LIMIT @n
  ) ORDER BY id DESC`;
const LIST_ALL = listAllStatuses(false);
const LIST_ALL_BEFORE = listAllStatuses(true);

/**
 * The inbox in the engine's SQLite database (or a receiver's own file), in WAL mode.
 * better-sqlite3 is synchronous, so each method runs inside one call and each transaction is one
 * `BEGIN IMMEDIATE … COMMIT`.
 *
 * Durability: a write that is a promise to someone (a new item before its 2xx) resolves only
 * once its WAL frames are fsynced, as with synchronous=FULL, but the fsync runs on the thread
 * pool (see WalSync) so intake keeps going meanwhile. Claims, lease releases and outcomes are not
 * waited for: losing one in a power cut only means the item comes due again, which an expired
 * lease means anyway (see completeItems).
 */
export class SqliteInboxStore implements InboxStore {
  readonly kind = "sqlite" as const;
  /** Undefined where there is no WAL file to sync (in-memory databases): commits are then plain ones. */
  private readonly walSync: WalSync | undefined;
  /** Whether commits nobody waits on may skip their fsync (a WAL file exists). */
  private readonly canRelax: boolean;
  private readonly restoreSynchronous: string;
  private readonly checkpointer: BackgroundCheckpointer;

  private readonly sql: SqliteStatements;

  /**
   * `ownsConnection`: the connection was opened for this inbox alone (see openSqliteInbox), and
   * `close` closes it.
   */
  constructor(
    readonly db: SqliteDatabase,
    private readonly options: { ownsConnection?: boolean } = {},
  ) {
    this.sql = new SqliteStatements(db);
    const wal = !db.memory && String(db.pragma("journal_mode", { simple: true })).toLowerCase() === "wal";
    this.canRelax = wal;
    this.walSync = wal ? new WalSync(`${db.name}-wal`) : undefined;
    this.restoreSynchronous = `PRAGMA synchronous = ${Number(db.pragma("synchronous", { simple: true }))}`;
    this.checkpointer = new BackgroundCheckpointer(db);
  }

  async start(): Promise<void> {
    if (this.canRelax) this.checkpointer.start();
  }

  async close(): Promise<void> {
    await this.checkpointer.stop();
    await this.walSync?.close();
    if (this.options.ownsConnection && this.db.open) this.db.close();
  }

  private all(sql: string, ...params: unknown[]): Row[] {
    return this.sql.all(sql, ...params);
  }

  private get(sql: string, ...params: unknown[]): Row | undefined {
    return this.sql.get(sql, ...params);
  }

  private run(sql: string, ...params: unknown[]) {
    return this.sql.run(sql, ...params);
  }

  private tx<T>(fn: () => T): T {
    return this.sql.immediate(fn);
  }

  /**
   * Commits without an fsync in the commit itself. The connection's own setting (FULL) is put
   * back before returning, so writes outside these helpers stay durable in the commit, and a
   * connection the caller shares keeps what it had; nothing else can run in between, as
   * better-sqlite3 calls are synchronous.
   */
  private relaxedTx<T>(fn: () => T): T {
    if (!this.canRelax) return this.tx(fn);
    this.sql.prepare("PRAGMA synchronous = NORMAL").run();
    try {
      return this.tx(fn);
    } finally {
      this.sql.prepare(this.restoreSynchronous).run();
    }
  }

  // Sources ------------------------------------------------------------------------------------

  async createSource(source: Source): Promise<Source> {
    const row = sourceToRow(source);
    try {
      this.run(
        `INSERT INTO inbound_sources (id, uid, name, provider, secrets, options, created_at, updated_at)
           VALUES (@id, @uid, @name, @provider, @secrets, @options, @created_at, @updated_at)`,
        row,
      );
    } catch (error) {
      if (errorCode(error) === "SQLITE_CONSTRAINT_UNIQUE")
        throw errors.conflict(`A source with uid '${source.uid}' already exists.`, "duplicate_uid");
      throw error;
    }
    return source;
  }

  async getSource(idOrUid: string): Promise<Source | undefined> {
    // The id wins over another source's uid, as in SqliteStore and on PostgreSQL.
    const row = this.get(
      "SELECT * FROM inbound_sources WHERE id = ? OR uid = ? ORDER BY id = ? DESC LIMIT 1",
      idOrUid,
      idOrUid,
      idOrUid,
    );
    return row ? sourceFromRow(row) : undefined;
  }

  async listSources(query: PageQuery): Promise<Page<Source>> {
    const rows = this.all(
      "SELECT * FROM inbound_sources WHERE id > ? ORDER BY id LIMIT ?",
      query.iterator ?? "",
      query.limit + 1,
    );
    const data = rows.slice(0, query.limit).map(sourceFromRow);
    return {
      data,
      iterator: data.at(-1)?.id ?? null,
      prevIterator: data[0] ? `-${data[0].id}` : null,
      done: rows.length <= query.limit,
    };
  }

  async allSources(): Promise<Source[]> {
    return this.all("SELECT * FROM inbound_sources ORDER BY id").map(sourceFromRow);
  }

  async updateSource(source: Source): Promise<Source> {
    const row = sourceToRow(source);
    try {
      this.run(
        `UPDATE inbound_sources SET uid = @uid, name = @name, provider = @provider, secrets = @secrets,
           options = @options, updated_at = @updated_at WHERE id = @id`,
        row,
      );
    } catch (error) {
      if (errorCode(error) === "SQLITE_CONSTRAINT_UNIQUE")
        throw errors.conflict(`A source with uid '${source.uid}' already exists.`, "duplicate_uid");
      throw error;
    }
    return source;
  }

  async deleteSource(id: string): Promise<void> {
    this.run("DELETE FROM inbound_sources WHERE id = ?", id);
  }

  async addVerifyFailures(tallies: VerifyFailureTally[]): Promise<void> {
    if (tallies.length === 0) return;
    // Counters: a power cut may lose the last second of them, which is not worth an fsync.
    this.relaxedTx(() => {
      for (const t of tallies) {
        this.run(
          `UPDATE inbound_sources SET verify_failures = verify_failures + ?, last_verify_failure_at = ?,
             last_verify_failure_code = ? WHERE id = ?`,
          t.count,
          t.lastAt,
          t.lastCode,
          t.sourceId,
        );
      }
    });
  }

  async sourceStats(sourceId: string): Promise<SourceStats> {
    return sourceStatsFromRows(
      this.get(
        "SELECT verify_failures, last_verify_failure_at, last_verify_failure_code FROM inbound_sources WHERE id = ?",
        sourceId,
      ),
      this.all("SELECT status, COUNT(*) AS n FROM inbox_items WHERE source_id = ? GROUP BY status", sourceId),
    );
  }

  // Intake -------------------------------------------------------------------------------------

  async insertItems(
    items: NewInboxItem[],
    handoff?: Handoff,
    carry?: OutcomeCarry,
  ): Promise<InsertOutcome[]> {
    if (items.length === 0 && !carry) return [];
    const taken: string[] = [];
    let carried: { ok: true } | { ok: false; error: unknown } | undefined;
    let inserted: InsertOutcome[];
    try {
      inserted = this.relaxedTx(() => {
        if (carry) carried = this.applyCarried(carry);
        return items.map((item) => this.insertOne(item, handoff, taken));
      });
    } catch (error) {
      for (const id of taken) handoff?.untake(id);
      carry?.failed(error);
      throw error;
    }
    // Committed: the outcomes need no fsync (see completeItems), so they are let go before it.
    if (carried?.ok) carry?.recorded();
    else if (carried) carry?.failed(carried.error);
    // A new item's 2xx waits for its frames to be on disk.
    if (items.length > 0) {
      try {
        await this.walSync?.sync();
      } catch (error) {
        // Past the commit: the items the handoff took are stored as taken, and must not be lost
        // to the processor with the rejection (see UnsyncedCommitError).
        throw new UnsyncedCommitError(inserted, error);
      }
    }
    return inserted;
  }

  /**
   * Carried outcomes under a savepoint of the insert's transaction: one that cannot be recorded
   * (its source deleted meanwhile, say) is rolled back alone and must not cost the new items
   * their insert.
   */
  private applyCarried(carry: OutcomeCarry): { ok: true } | { ok: false; error: unknown } {
    try {
      this.sql.savepoint(() => this.applyOutcomes(carry.outcomes, carry.now));
      return { ok: true };
    } catch (error) {
      return { ok: false, error };
    }
  }

  private insertOne(item: NewInboxItem, handoff: Handoff | undefined, taken: string[]): InsertOutcome {
    const headers = JSON.stringify(item.headers);
    const take = handoff?.take(item) ?? false;
    if (take) taken.push(item.id);
    const status = take ? "processing" : "received";
    const nextAttemptAt = take ? handoff!.leaseUntil : item.receivedAt;
    try {
      // The first copy claims the (source, event id) slot; the unique index refuses a second.
      const inserted = this.run(
        INSERT_FIRST_COPY,
        ...itemParams(item, headers, status, item.eventId, null, nextAttemptAt),
      );
      if (inserted.changes > 0) {
        if (!take) return { id: item.id, status: "received" };
        const mark =
          item.orderingKey === null
            ? undefined
            : this.get(
                "SELECT newest_event_time FROM inbound_order_marks WHERE source_id = ? AND ordering_key = ?",
                item.sourceId,
                item.orderingKey,
              );
        return { id: item.id, status: "received", claimed: handedOff(item, nextAttemptAt, mark) };
      }
      if (take) {
        taken.pop();
        handoff!.untake(item.id);
      }
      const first = this.get(
        "SELECT id FROM inbox_items WHERE source_id = ? AND dedupe_key = ?",
        item.sourceId,
        item.eventId,
      );
      const duplicateOf = String(first?.id);
      this.run(INSERT_ITEM, ...itemParams(item, headers, "duplicate", null, duplicateOf, null));
      return { id: item.id, status: "duplicate", duplicateOf };
    } catch (error) {
      // The source was deleted while this request was in flight. SQLite rolls back only the
      // failed statement, so the rest of the batch still commits.
      if (errorCode(error) === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        if (take && taken.at(-1) === item.id) {
          taken.pop();
          handoff!.untake(item.id);
        }
        return { id: item.id, status: "rejected" };
      }
      throw error;
    }
  }

  // Processing ---------------------------------------------------------------------------------

  async claimItems(claim: InboxClaim): Promise<ClaimedItem[]> {
    return this.relaxedTx(() => {
      // Two steps: pick from light candidate rows, then read whole rows (bodies) only for the
      // picked ones. Candidates beyond a source's room or behind a busy key are read again on
      // every claim, so they must be cheap.
      const sourceFilter =
        claim.sourceIds === null ? "" : "AND i.source_id IN (SELECT value FROM json_each(?))";
      const readCandidates = (count: number) => {
        const params: unknown[] = [claim.now];
        if (claim.sourceIds !== null) params.push(JSON.stringify(claim.sourceIds));
        params.push(JSON.stringify(claim.excludeSourceIds), count);
        return this.all(
          `SELECT i.id, i.source_id, i.ordering_key, m.newest_event_time FROM inbox_items i
             LEFT JOIN inbound_order_marks m ON m.source_id = i.source_id AND m.ordering_key = i.ordering_key
             WHERE i.status IN ('received', 'processing') AND i.next_attempt_at <= ? ${sourceFilter}
               AND i.source_id NOT IN (SELECT value FROM json_each(?))
             ORDER BY i.next_attempt_at, i.id LIMIT ?`,
          ...params,
        );
      };
      // One process owns a SQLite file, so what the caller holds is all that is in flight (but for
      // what a process that died left leased: see below): take no more per source than its cap
      // leaves room for, and one item per ordering key.
      // Keys under a live lease are busy too, held by the caller or not: a dead process's items
      // stay leased until their lease ends, and a newer item of such a key must wait for the
      // older one (PostgreSQL's claim checks the same in its query).
      const pick = (candidates: Row[]) => {
        const leased = this.leasedKeys(candidates, claim.now);
        return pickClaimable(
          candidates,
          leased.length === 0 ? claim : { ...claim, busyKeys: [...claim.busyKeys, ...leased] },
        );
      };
      // Usually the first `limit` due rows are all takeable (one source with room, no busy keys):
      // read just those. Only when some had to be passed over, read further, up to four times as
      // many, so a full source or a busy key cannot hide what stands behind it.
      const first = readCandidates(claim.limit);
      let newest = pick(first);
      if (newest.size < claim.limit && first.length === claim.limit)
        newest = pick(readCandidates(claim.limit * 4));
      if (newest.size === 0) return [];
      const ids = JSON.stringify([...newest.keys()]);
      this.run(
        `UPDATE inbox_items SET status = 'processing', next_attempt_at = ?, updated_at = ?
           WHERE id IN (SELECT value FROM json_each(?))`,
        claim.leaseUntil,
        claim.now,
        ids,
      );
      return this.all(
        "SELECT * FROM inbox_items WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id",
        ids,
      ).map((row) => {
        const item = itemFromRow(row);
        return { item, newestProcessedTime: newest.get(item.id) ?? null };
      });
    });
  }

  /**
   * The ordering keys, in the candidates' sources, of items in processing under a live lease (the
   * caller's own, and any a dead process left). A query only when candidates have keys, and a
   * small one: a source's processing items are what is in flight, found via inbox_source_status.
   * (As a NOT EXISTS in the candidate query, every claim would test each due item of a busy key's
   * backlog before reaching its LIMIT.)
   */
  private leasedKeys(candidates: readonly Row[], now: number): string[] {
    const sources = new Set<string>();
    for (const row of candidates) if (row.ordering_key !== null) sources.add(String(row.source_id));
    if (sources.size === 0) return [];
    return this.all(
      `SELECT DISTINCT source_id, ordering_key FROM inbox_items
         WHERE source_id IN (SELECT value FROM json_each(?)) AND status = 'processing'
           AND ordering_key IS NOT NULL AND next_attempt_at > ?`,
      JSON.stringify([...sources]),
      now,
    ).map((row) => keyOf(String(row.source_id), String(row.ordering_key)));
  }

  /**
   * Not fsynced: an outcome is safe from a crash of the process once committed (WAL mode), and
   * the next intake commit's fsync makes it safe from a power cut too, since WAL frames reach the
   * disk in order. A power cut before then re-runs those items' handlers, which at-least-once
   * handling allows; the fsync it saves was one of the two per intake cycle.
   */
  async completeItems(outcomes: ItemOutcome[], now: number): Promise<void> {
    if (outcomes.length === 0) return;
    this.relaxedTx(() => this.applyOutcomes(outcomes, now));
  }

  private applyOutcomes(outcomes: readonly ItemOutcome[], now: number): void {
    // Processed items are finished by one statement per stale flag rather than one per item.
    const processed: [string[], string[]] = [[], []];
    for (const o of outcomes) {
      // Only an item still in `processing` is ours to finish; a requeue or delete wins.
      switch (o.result) {
        case "processed":
          processed[o.stale ? 1 : 0].push(o.id);
          if (o.mark) {
            // The source may be gone (deleted mid-flight): then there is no mark to keep, and its
            // foreign key failed the whole batch, other sources' items then handled again at their
            // lease end. Guarded as on PostgreSQL; a WHERE is also what lets SQLite parse the
            // ON CONFLICT after a SELECT.
            this.run(
              `INSERT INTO inbound_order_marks (source_id, ordering_key, newest_event_time, item_id)
                 SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM inbound_sources WHERE id = ?)
                 ON CONFLICT (source_id, ordering_key) DO UPDATE SET
                   newest_event_time = excluded.newest_event_time, item_id = excluded.item_id
                 WHERE excluded.newest_event_time > inbound_order_marks.newest_event_time`,
              o.sourceId,
              o.mark.key,
              o.mark.eventTime,
              o.id,
              o.sourceId,
            );
          }
          break;
        case "stale":
          this.run(
            `UPDATE inbox_items SET status = 'stale', next_attempt_at = NULL, processed_at = ?, updated_at = ?
               WHERE id = ? AND status = 'processing'`,
            now,
            now,
            o.id,
          );
          break;
        case "retry":
          this.run(
            `UPDATE inbox_items SET status = 'received', attempts = attempts + 1, next_attempt_at = ?,
               last_error = ?, updated_at = ? WHERE id = ? AND status = 'processing'`,
            o.nextAttemptAt,
            o.error,
            now,
            o.id,
          );
          break;
        case "failed":
          this.run(
            `UPDATE inbox_items SET status = 'failed', attempts = attempts + 1, next_attempt_at = NULL,
               last_error = ?, updated_at = ? WHERE id = ? AND status = 'processing'`,
            o.error,
            now,
            o.id,
          );
          break;
      }
    }
    processed.forEach((ids, stale) => {
      if (ids.length === 0) return;
      this.run(
        `UPDATE inbox_items SET status = 'processed', attempts = attempts + 1, stale = ?, last_error = NULL,
           next_attempt_at = NULL, processed_at = ?, updated_at = ?
           WHERE id IN (SELECT value FROM json_each(?)) AND status = 'processing'`,
        stale,
        now,
        now,
        JSON.stringify(ids),
      );
    });
  }

  async releaseItems(ids: string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    this.relaxedTx(() =>
      this.run(
        `UPDATE inbox_items SET status = 'received', next_attempt_at = ?, updated_at = ?
           WHERE status = 'processing' AND id IN (SELECT value FROM json_each(?))`,
        now,
        now,
        JSON.stringify(ids),
      ),
    );
  }

  async nextDueAt(sourceIds: string[] | null): Promise<number | undefined> {
    const row =
      sourceIds === null
        ? this.get(
            "SELECT MIN(next_attempt_at) AS at FROM inbox_items WHERE status IN ('received', 'processing')",
          )
        : this.get(
            `SELECT MIN(next_attempt_at) AS at FROM inbox_items WHERE status IN ('received', 'processing')
               AND source_id IN (SELECT value FROM json_each(?))`,
            JSON.stringify(sourceIds),
          );
    return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
  }

  // Reading ------------------------------------------------------------------------------------

  async listItems(sourceId: string, query: InboxQuery): Promise<Page<ReturnType<typeof itemFromRow>>> {
    const rows = query.status
      ? this.all(
          `SELECT * FROM inbox_items WHERE source_id = ? AND status = ? ${query.iterator ? "AND id < ?" : ""}
             ORDER BY id DESC LIMIT ?`,
          ...[sourceId, query.status, ...(query.iterator ? [query.iterator] : [])],
          query.limit + 1,
        )
      : query.iterator
        ? this.all(LIST_ALL_BEFORE, { source: sourceId, before: query.iterator, n: query.limit + 1 })
        : this.all(LIST_ALL, { source: sourceId, n: query.limit + 1 });
    const data = rows.slice(0, query.limit).map(itemFromRow);
    return {
      data,
      iterator: data.at(-1)?.id ?? null,
      prevIterator: data[0] ? `-${data[0].id}` : null,
      done: rows.length <= query.limit,
    };
  }

  async getItem(sourceId: string, itemId: string) {
    const row = this.get("SELECT * FROM inbox_items WHERE source_id = ? AND id = ?", sourceId, itemId);
    return row ? itemFromRow(row) : undefined;
  }

  async requeueItem(sourceId: string, itemId: string, now: number): Promise<boolean> {
    return (
      this.run(
        `UPDATE inbox_items SET status = 'received', attempts = 0, next_attempt_at = ?, last_error = NULL,
           updated_at = ? WHERE source_id = ? AND id = ? AND status IN ('failed', 'stale')`,
        now,
        now,
        sourceId,
        itemId,
      ).changes > 0
    );
  }
}
