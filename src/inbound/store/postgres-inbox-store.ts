import type pg from "pg";
import { errorMessage, errors } from "../../core/errors.js";
import { type Database, preparedQuery } from "../../store/postgres/database.js";
import { isDataException, isolateRefused } from "../../store/postgres/isolate-refused.js";
import type { Page, PageQuery } from "../../store/types.js";
import type { ClaimedItem, InboxItem, InsertOutcome, ItemOutcome, NewInboxItem, Source } from "../types.js";
import {
  handedOff,
  ITEM_COLUMNS,
  itemFromRow,
  itemParams,
  pickClaimable,
  type Row,
  SOURCE_COLUMNS,
  sourceFromRow,
  sourceParams,
  sourceStatsFromRows,
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

const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

const placeholders = (n: number, from = 1): string =>
  Array.from({ length: n }, (_, i) => `$${i + from}`).join(", ");

const INSERT_SOURCE = `INSERT INTO inbound_sources (${SOURCE_COLUMNS.join(", ")})
  VALUES (${placeholders(SOURCE_COLUMNS.length)})`;

const INSERT_ITEM = `INSERT INTO inbox_items (${ITEM_COLUMNS.join(", ")})
  VALUES (${placeholders(ITEM_COLUMNS.length)})`;

/** Parameter types for INSERT … SELECT, where PostgreSQL cannot infer them from the columns. */
const ITEM_TYPES: Record<(typeof ITEM_COLUMNS)[number], string> = {
  id: "text",
  source_id: "text",
  status: "text",
  dedupe_key: "text",
  event_id: "text",
  duplicate_of: "text",
  event_type: "text",
  event_time: "bigint",
  ordering_key: "text",
  method: "text",
  path: "text",
  query: "text",
  headers: "json",
  body: "bytea",
  content_type: "text",
  body_kind: "text",
  next_attempt_at: "bigint",
  received_at: "bigint",
  updated_at: "bigint",
};

/**
 * The first copies of a whole batch in one statement, in the batch's lock order (`ord`),
 * returning the ids it inserted. The first copy of an event takes its (source, event id) slot;
 * the unique index refuses a second (ON CONFLICT waits for a concurrent first copy to commit or
 * roll back, then decides). The source check keeps a request for a just-deleted source from
 * aborting the whole batch: it inserts nothing instead, and is then told apart from a duplicate by
 * the missing first copy. Each column goes as one array parameter (Buffers as bytea, text encoded
 * as UTF-8 exactly as single values are). Why: one statement per item meant one round trip per
 * request inside the intake's transaction, and the event loop spent ~340 µs per request on them
 * (2,429 requests/s at 64 in flight, p99 45 ms at 1,000/s, `bench/inbound.ts` on PostgreSQL).
 */
const INSERT_FIRST_COPIES = `INSERT INTO inbox_items (${ITEM_COLUMNS.join(", ")})
  SELECT ${ITEM_COLUMNS.map((column) => `r.${column}`).join(", ")}
    FROM unnest(${ITEM_COLUMNS.map((column, i) => `$${i + 1}::${ITEM_TYPES[column]}[]`).join(", ")})
      WITH ORDINALITY AS r(${ITEM_COLUMNS.join(", ")}, ord)
   WHERE EXISTS (SELECT 1 FROM inbound_sources s WHERE s.id = r.source_id)
   ORDER BY r.ord
  ON CONFLICT (source_id, dedupe_key) DO NOTHING
  RETURNING id`;

/** The ordering marks of (source, key) pairs, for the items handed to the processor. */
const READ_MARKS = `SELECT m.source_id, m.ordering_key, m.newest_event_time
    FROM inbound_order_marks m
    JOIN unnest($1::text[], $2::text[]) AS k(source_id, ordering_key)
      ON m.source_id = k.source_id AND m.ordering_key = k.ordering_key`;

/**
 * The order a batch is written in: by (source, event id), stable, so copies of one event keep
 * their arrival order. Two batches with the same event ids then take the unique index's slots
 * in the same order and wait for each other instead of deadlocking.
 */
function lockOrder(items: readonly NewInboxItem[]): number[] {
  const keyOfItem = (item: NewInboxItem) =>
    item.eventId === null ? "" : `${item.sourceId}\u0000${item.eventId}`;
  return items
    .map((item, i) => ({ key: keyOfItem(item), i }))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i))
    .map((entry) => entry.i);
}

/** Fetches limit+1 rows so `done` is known without a count query (same paging as SQLite). */
function page<T>(rows: Row[], limit: number, map: (row: Row) => T, idOf: (item: T) => string): Page<T> {
  const data = rows.slice(0, limit).map(map);
  return {
    data,
    iterator: data.length > 0 ? idOf(data[data.length - 1]!) : null,
    prevIterator: data[0] ? `-${idOf(data[0])}` : null,
    done: rows.length <= limit,
  };
}

/**
 * The inbox in the engine's PostgreSQL database, on the sending store's pool: an inbound request
 * and the message it is forwarded as live in one database. Same semantics as the SQLite inbox
 * (sqlite-inbox-store.ts); what differs is that many Pigeon processes may share it:
 *
 * - claims lock their candidate rows `FOR UPDATE SKIP LOCKED`, so two workers never take the
 *   same item, and skip ordering keys another worker holds under an unexpired lease;
 * - de-duplication is the unique index on (source_id, dedupe_key), which holds across processes.
 *
 * Per-source concurrency caps are the caller's (`roomBySource`), as on SQLite: each process caps
 * what it holds itself. Writes are one transaction per call; a commit is durable when it returns
 * (synchronous_commit), so intake answers 2xx only for items on disk.
 */
export class PostgresInboxStore implements InboxStore {
  readonly kind = "postgres" as const;

  constructor(readonly db: Database) {}

  async start(): Promise<void> {}

  /** The pool belongs to the sending store, which ends it. */
  async close(): Promise<void> {}

  private tx<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    return this.db.withClient(async (client) => {
      await client.query("BEGIN");
      try {
        const result = await fn(client);
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    });
  }

  // Sources ------------------------------------------------------------------------------------

  async createSource(source: Source): Promise<Source> {
    try {
      await this.db.query(INSERT_SOURCE, sourceParams(source));
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`A source with uid '${source.uid}' already exists.`, "duplicate_uid");
      throw error;
    }
    return source;
  }

  async getSource(idOrUid: string): Promise<Source | undefined> {
    const row = await this.db.one(
      "SELECT * FROM inbound_sources WHERE id = $1 OR uid = $1 ORDER BY id = $1 DESC LIMIT 1",
      [idOrUid],
      { read: true },
    );
    return row ? sourceFromRow(row) : undefined;
  }

  async listSources(query: PageQuery): Promise<Page<Source>> {
    const rows = await this.db.query(
      "SELECT * FROM inbound_sources WHERE id > $1 ORDER BY id LIMIT $2",
      [query.iterator ?? "", query.limit + 1],
      { read: true },
    );
    return page(rows, query.limit, sourceFromRow, (s) => s.id);
  }

  async allSources(): Promise<Source[]> {
    const rows = await this.db.query("SELECT * FROM inbound_sources ORDER BY id", [], { read: true });
    return rows.map(sourceFromRow);
  }

  async updateSource(source: Source): Promise<Source> {
    const [id, uid, name, provider, secrets, options, , updatedAt] = sourceParams(source);
    try {
      await this.db.query(
        `UPDATE inbound_sources SET uid = $2, name = $3, provider = $4, secrets = $5, options = $6,
           updated_at = $7 WHERE id = $1`,
        [id, uid, name, provider, secrets, options, updatedAt],
      );
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`A source with uid '${source.uid}' already exists.`, "duplicate_uid");
      throw error;
    }
    return source;
  }

  async deleteSource(id: string): Promise<void> {
    await this.db.query("DELETE FROM inbound_sources WHERE id = $1", [id]);
  }

  async addVerifyFailures(tallies: VerifyFailureTally[]): Promise<void> {
    if (tallies.length === 0) return;
    // One statement for the batch: the tallies as parallel arrays, summed per source first.
    await this.db.query(
      `UPDATE inbound_sources s SET verify_failures = s.verify_failures + t.count,
         last_verify_failure_at = t.last_at, last_verify_failure_code = t.last_code
       FROM (SELECT DISTINCT ON (source_id) source_id,
               sum(count) OVER (PARTITION BY source_id) AS count, last_at, last_code
             FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[])
               WITH ORDINALITY AS u(source_id, count, last_at, last_code, n)
             ORDER BY source_id, n DESC) t
       WHERE s.id = t.source_id`,
      [
        tallies.map((t) => t.sourceId),
        tallies.map((t) => t.count),
        tallies.map((t) => t.lastAt),
        tallies.map((t) => t.lastCode),
      ],
    );
  }

  async sourceStats(sourceId: string): Promise<SourceStats> {
    const [source, rows] = await Promise.all([
      this.db.one(
        "SELECT verify_failures, last_verify_failure_at, last_verify_failure_code FROM inbound_sources WHERE id = $1",
        [sourceId],
        { read: true },
      ),
      this.db.query(
        "SELECT status, count(*) AS n FROM inbox_items WHERE source_id = $1 GROUP BY status",
        [sourceId],
        { read: true },
      ),
    ]);
    return sourceStatsFromRows(source, rows);
  }

  // Intake -------------------------------------------------------------------------------------

  async insertItems(
    items: NewInboxItem[],
    handoff?: Handoff,
    carry?: OutcomeCarry,
  ): Promise<InsertOutcome[]> {
    // Carried outcomes go by their own statements beside the insert, not in its transaction: they
    // would only add to the round trips a new item's 2xx waits for.
    if (carry) {
      this.completeItems(carry.outcomes, carry.now).then(
        () => carry.recorded(),
        (error: unknown) => carry.failed(error),
      );
    }
    if (items.length === 0) return [];
    // A source deleted between the EXISTS check and the insert's foreign-key check aborts the
    // transaction; the second run finds it gone and rejects its items instead.
    for (let attempt = 1; ; attempt++) {
      const taken: string[] = [];
      try {
        return await this.tx((client) => this.insertBatch(client, items, handoff, taken));
      } catch (error) {
        for (const id of taken) handoff?.untake(id);
        if (attempt >= 2 || sqlState(error) !== FOREIGN_KEY_VIOLATION) throw error;
      }
    }
  }

  /**
   * First copies in one statement (INSERT_FIRST_COPIES); what it did not insert (a duplicate, or
   * a source deleted meanwhile) is then written item by item as before, in the same order. The
   * processor's handoff is asked about every item first, in the batch's (arrival) order, and an
   * item that turns out not to be new is given back.
   */
  private async insertBatch(
    client: pg.PoolClient,
    items: NewInboxItem[],
    handoff: Handoff | undefined,
    taken: string[],
  ): Promise<InsertOutcome[]> {
    // Asked in arrival order, as on SQLite: of two items of one ordering key the processor takes
    // the one that came first. In lock order (by event id) it could take the later one, and the
    // earlier, acknowledged one was then judged stale behind it and never handled.
    const takes = new Set<string>();
    const leased = handoff ? await leasedKeysOf(client, items) : undefined;
    for (const item of items) {
      // Not handed over while a live lease holds its ordering key: the processor knows only the
      // keys this process runs, and another worker on the database may be running this one (two
      // items of one key ran at once on two workers). Its claim takes it once the key is free,
      // as claimItems checks the same leases.
      if (item.orderingKey !== null && leased?.has(keyOf(item.sourceId, item.orderingKey))) continue;
      if (!(handoff?.take(item) ?? false)) continue;
      taken.push(item.id);
      takes.add(item.id);
    }
    const order = lockOrder(items);
    const rows = order.map((i) => {
      const item = items[i]!;
      const take = takes.has(item.id);
      const nextAttemptAt = take ? handoff!.leaseUntil : item.receivedAt;
      const status = take ? "processing" : "received";
      return itemParams(item, JSON.stringify(item.headers), status, item.eventId, null, nextAttemptAt);
    });
    const columns = ITEM_COLUMNS.map((_, c) => rows.map((row) => row[c]));
    const inserted = new Set(
      (await client.query<Row>(preparedQuery(INSERT_FIRST_COPIES, columns))).rows.map((row) =>
        String(row.id),
      ),
    );

    const keyed = items.filter(
      (item) => inserted.has(item.id) && takes.has(item.id) && item.orderingKey !== null,
    );
    const marks = new Map<string, Row>();
    if (keyed.length > 0) {
      const { rows: found } = await client.query<Row>(READ_MARKS, [
        keyed.map((item) => item.sourceId),
        keyed.map((item) => item.orderingKey),
      ]);
      for (const row of found) marks.set(keyOf(String(row.source_id), String(row.ordering_key)), row);
    }

    const outcomes: InsertOutcome[] = new Array(items.length);
    for (const i of order) {
      const item = items[i]!;
      const took = takes.has(item.id);
      if (inserted.has(item.id)) {
        outcomes[i] = !took
          ? { id: item.id, status: "received" }
          : {
              id: item.id,
              status: "received",
              claimed: handedOff(
                item,
                handoff!.leaseUntil,
                item.orderingKey === null ? undefined : marks.get(keyOf(item.sourceId, item.orderingKey)),
              ),
            };
        continue;
      }
      if (took) {
        taken.splice(taken.indexOf(item.id), 1);
        handoff!.untake(item.id);
      }
      outcomes[i] = await this.insertNotFirst(client, item);
    }
    return outcomes;
  }

  /** An item whose first-copy insert inserted nothing: a duplicate of its event, or rejected. */
  private async insertNotFirst(client: pg.PoolClient, item: NewInboxItem): Promise<InsertOutcome> {
    const first =
      item.eventId === null
        ? undefined
        : (
            await client.query<Row>("SELECT id FROM inbox_items WHERE source_id = $1 AND dedupe_key = $2", [
              item.sourceId,
              item.eventId,
            ])
          ).rows[0];
    if (!first) return { id: item.id, status: "rejected" };
    const duplicateOf = String(first.id);
    const headers = JSON.stringify(item.headers);
    await client.query(INSERT_ITEM, itemParams(item, headers, "duplicate", null, duplicateOf, null));
    return { id: item.id, status: "duplicate", duplicateOf };
  }

  // Processing ---------------------------------------------------------------------------------

  async claimItems(claim: InboxClaim): Promise<ClaimedItem[]> {
    return this.tx(async (client) => {
      // Two steps, as on SQLite: lock light candidate rows, pick in code, then read whole rows
      // (bodies) only for the picked ones. Rows locked by another worker's claim are skipped, not
      // waited for; so are keys another worker holds under a live lease (its busyKeys are not
      // ours to know). Candidates not picked are unlocked at commit, a few ms later.
      const readCandidates = (count: number) =>
        client.query<Row>(
          `SELECT i.id, i.source_id, i.ordering_key, m.newest_event_time FROM inbox_items i
           LEFT JOIN inbound_order_marks m ON m.source_id = i.source_id AND m.ordering_key = i.ordering_key
          WHERE i.status IN ('received', 'processing') AND i.next_attempt_at <= $1
            AND ($2::text[] IS NULL OR i.source_id = ANY($2::text[]))
            AND NOT (i.source_id = ANY($3::text[]))
            AND NOT (i.id = ANY($4::text[]))
            AND (i.ordering_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM inbox_items o
               WHERE o.source_id = i.source_id AND o.ordering_key = i.ordering_key
                 AND o.status = 'processing' AND o.ordering_key IS NOT NULL AND o.next_attempt_at > $1))
          ORDER BY i.next_attempt_at, i.id LIMIT $5
          FOR UPDATE OF i SKIP LOCKED`,
          [claim.now, claim.sourceIds, claim.excludeSourceIds, claim.heldIds, count],
        );
      // As on SQLite: read (and lock) as many rows as may be taken, and further only when some
      // had to be passed over; the rows read first are ours already and are simply read again.
      const first = await readCandidates(claim.limit);
      let newest = pickClaimable(first.rows, claim);
      if (newest.size < claim.limit && first.rows.length === claim.limit)
        newest = pickClaimable((await readCandidates(claim.limit * 4)).rows, claim);
      if (newest.size === 0) return [];
      const updated = await client.query<Row>(
        `UPDATE inbox_items SET status = 'processing', next_attempt_at = $1, updated_at = $2
          WHERE id = ANY($3::text[]) RETURNING *`,
        [claim.leaseUntil, claim.now, [...newest.keys()]],
      );
      return updated.rows
        .map(itemFromRow)
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .map((item) => ({ item, newestProcessedTime: newest.get(item.id) ?? null }));
    });
  }

  /**
   * One transaction per batch. A value PostgreSQL refuses costs only its own item's record (see
   * isolateRefused): the processor keeps a batch that failed for the lease to bring back, so one
   * refused value had every item of its batch handled again, and again, never recorded. The refused
   * item is recorded reduced (a processed one without its ordering mark, a failure or retry with
   * a note in place of the handler's error); if even that is refused, it stays under its lease.
   */
  async completeItems(outcomes: ItemOutcome[], now: number): Promise<void> {
    if (outcomes.length === 0) return;
    const record = (batch: ItemOutcome[]) => this.tx((client) => this.applyOutcomes(client, batch, now));
    await isolateRefused(outcomes, record, async (outcome, error) => {
      const why = errorMessage(error);
      try {
        await record([reducedOutcome(outcome, why)]);
        console.error(
          `pigeon: PostgreSQL refused the outcome of inbox item ${outcome.id} (${why}); recorded it ${outcome.result} without the refused value`,
        );
      } catch (second) {
        if (!isDataException(second)) throw second;
        console.error(
          `pigeon: PostgreSQL refused the outcome of inbox item ${outcome.id} (${why}); left it under its lease`,
        );
      }
    });
  }

  private async applyOutcomes(
    client: pg.PoolClient,
    outcomes: readonly ItemOutcome[],
    now: number,
  ): Promise<void> {
    for (const o of outcomes) {
      // Only an item still in `processing` is ours to finish; a requeue or delete wins.
      switch (o.result) {
        case "processed":
          await client.query(
            `UPDATE inbox_items SET status = 'processed', attempts = attempts + 1, stale = $1, last_error = NULL,
                 next_attempt_at = NULL, processed_at = $2, updated_at = $2 WHERE id = $3 AND status = 'processing'`,
            [o.stale, now, o.id],
          );
          if (o.mark) {
            // The source may be gone (deleted mid-flight): then there is no mark to keep.
            await client.query(
              `INSERT INTO inbound_order_marks (source_id, ordering_key, newest_event_time, item_id)
                   SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM inbound_sources WHERE id = $1)
                   ON CONFLICT (source_id, ordering_key) DO UPDATE SET
                     newest_event_time = excluded.newest_event_time, item_id = excluded.item_id
                   WHERE excluded.newest_event_time > inbound_order_marks.newest_event_time`,
              [o.sourceId, o.mark.key, o.mark.eventTime, o.id],
            );
          }
          break;
        case "stale":
          await client.query(
            `UPDATE inbox_items SET status = 'stale', next_attempt_at = NULL, processed_at = $1, updated_at = $1
                 WHERE id = $2 AND status = 'processing'`,
            [now, o.id],
          );
          break;
        case "retry":
          await client.query(
            `UPDATE inbox_items SET status = 'received', attempts = attempts + 1, next_attempt_at = $1,
                 last_error = $2, updated_at = $3 WHERE id = $4 AND status = 'processing'`,
            [o.nextAttemptAt, o.error, now, o.id],
          );
          break;
        case "failed":
          await client.query(
            `UPDATE inbox_items SET status = 'failed', attempts = attempts + 1, next_attempt_at = NULL,
                 last_error = $1, updated_at = $2 WHERE id = $3 AND status = 'processing'`,
            [o.error, now, o.id],
          );
          break;
      }
    }
  }

  async releaseItems(ids: string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query(
      `UPDATE inbox_items SET status = 'received', next_attempt_at = $1, updated_at = $1
        WHERE status = 'processing' AND id = ANY($2::text[])`,
      [now, ids],
    );
  }

  async nextDueAt(sourceIds: string[] | null): Promise<number | undefined> {
    const row = await this.db.one(
      `SELECT min(next_attempt_at) AS at FROM inbox_items WHERE status IN ('received', 'processing')
         AND ($1::text[] IS NULL OR source_id = ANY($1::text[]))`,
      [sourceIds],
      { read: true },
    );
    return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
  }

  // Reading ------------------------------------------------------------------------------------

  async listItems(sourceId: string, query: InboxQuery): Promise<Page<InboxItem>> {
    const values: unknown[] = [sourceId];
    let filters = "";
    if (query.iterator) {
      values.push(query.iterator);
      filters += ` AND id < $${values.length}`;
    }
    if (query.status) {
      values.push(query.status);
      filters += ` AND status = $${values.length}`;
    }
    values.push(query.limit + 1);
    const rows = await this.db.query(
      `SELECT * FROM inbox_items WHERE source_id = $1${filters} ORDER BY id DESC LIMIT $${values.length}`,
      values,
      { read: true },
    );
    return page(rows, query.limit, itemFromRow, (i) => i.id);
  }

  async getItem(sourceId: string, itemId: string): Promise<InboxItem | undefined> {
    const row = await this.db.one(
      "SELECT * FROM inbox_items WHERE source_id = $1 AND id = $2",
      [sourceId, itemId],
      { read: true },
    );
    return row ? itemFromRow(row) : undefined;
  }

  async requeueItem(sourceId: string, itemId: string, now: number): Promise<boolean> {
    const rows = await this.db.query(
      `UPDATE inbox_items SET status = 'received', attempts = 0, next_attempt_at = $1, last_error = NULL,
         updated_at = $1 WHERE source_id = $2 AND id = $3 AND status IN ('failed', 'stale') RETURNING id`,
      [now, sourceId, itemId],
    );
    return rows.length > 0;
  }
}

/** An outcome without what PostgreSQL may have refused in it: the ordering mark, the handler's error. */
function reducedOutcome(outcome: ItemOutcome, why: string): ItemOutcome {
  const note = `The handler's error could not be stored (PostgreSQL: ${why}).`;
  switch (outcome.result) {
    case "processed":
      return { id: outcome.id, sourceId: outcome.sourceId, result: "processed", stale: outcome.stale };
    case "retry":
    case "failed":
      return { ...outcome, error: note };
    default:
      return outcome;
  }
}

/**
 * The ordering keys of `items` that an item under a live lease holds now (any worker's), read in
 * the inserting transaction; nothing is read for a batch without keys (the common case).
 */
async function leasedKeysOf(client: pg.PoolClient, items: NewInboxItem[]): Promise<Set<string>> {
  const keyed = items.filter((item) => item.orderingKey !== null);
  if (keyed.length === 0) return new Set();
  const { rows } = await client.query<Row>(
    `SELECT DISTINCT i.source_id, i.ordering_key FROM inbox_items i
       JOIN unnest($1::text[], $2::text[]) AS k(source_id, ordering_key)
         ON i.source_id = k.source_id AND i.ordering_key = k.ordering_key
      WHERE i.status = 'processing' AND i.next_attempt_at > $3`,
    // Live as of their arrival, by the clock the intake stamped them with.
    [
      keyed.map((item) => item.sourceId),
      keyed.map((item) => item.orderingKey),
      Math.max(...keyed.map((item) => item.receivedAt)),
    ],
  );
  return new Set(rows.map((row) => keyOf(String(row.source_id), String(row.ordering_key))));
}
