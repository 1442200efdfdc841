import { randomUUID } from "node:crypto";
import type { PoolClient } from "pg";
import { errors } from "../../core/errors.js";
import { slotSpacingMs } from "../rate-slots.js";
import { endpointUpdateRow } from "../row-mapping.js";
import type {
  AttemptQuery,
  ClaimedDelivery,
  ClaimRequest,
  DeliveryOutcome,
  MessageQuery,
  PublishContext,
  Store,
  StoredResponse,
} from "../store.js";
import { succeededForAttemptStatus } from "../store.js";
import type {
  Application,
  Attempt,
  Delivery,
  Endpoint,
  EventType,
  Message,
  OperationalEvent,
  Page,
  PageQuery,
} from "../types.js";
import { claimFromRows, claimQuery } from "./claim.js";
import { completeQuery, recordIsolating } from "./complete.js";
import {
  createPool,
  type PostgresConnectionConfig,
  type PostgresStoreOptions,
  resolveConnectionConfig,
} from "./connection.js";
import { Database } from "./database.js";
import { WorkListener } from "./listener.js";
import { migrate } from "./migrations.js";
import { NEXT_DUE_SQL } from "./next-due.js";
import {
  applicationFromRow,
  applicationToRow,
  attemptFromRow,
  deliveryFromRow,
  deliveryToRow,
  endpointFromRow,
  endpointToRow,
  eventTypeFromRow,
  eventTypeToRow,
  insertQuery,
  messageFromRow,
  messageToRow,
  operationalEventFromRow,
  type Row,
  updateQuery,
} from "./rows.js";

const UNIQUE_VIOLATION = "23505";
const FOREIGN_KEY_VIOLATION = "23503";

function sqlState(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

/** Fetches limit+1 rows so `done` is known without a count query (same paging as SQLite). */
function page<T>(rows: Row[], limit: number, map: (row: Row) => T, idOf: (item: T) => string): Page<T> {
  const items = rows.slice(0, limit).map(map);
  const done = rows.length <= limit;
  const last = items[items.length - 1];
  const first = items[0];
  return {
    data: items,
    iterator: last ? idOf(last) : null,
    prevIterator: first ? `-${idOf(first)}` : null,
    done,
  };
}

/** Collects `AND …` clauses with numbered parameters, starting after the fixed ones. */
class Filters {
  private readonly clauses: string[] = [];
  constructor(readonly values: unknown[]) {}

  add(clause: (param: string) => string, value: unknown): void {
    this.values.push(value);
    this.clauses.push(clause(`$${this.values.length}`));
  }

  get sql(): string {
    return this.clauses.map((c) => ` AND ${c}`).join("");
  }

  /** The next parameter placeholder, for a value appended after the filters (the LIMIT). */
  push(value: unknown): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/**
 * A subquery for a statement that queues a delivery for the endpoint `endpointId` (an SQL
 * expression): the endpoint's row, if it still exists, with its status, held by this statement
 * (KEY SHARE, what a foreign key's check takes) until it commits.
 *
 * Deliveries have no foreign key to their endpoint (migration 6), so the lock is what keeps a
 * delivery from being inserted for an endpoint deleted meanwhile: the delete waits for the lock and
 * its trigger then finds the row; or, deleted first, the endpoint is not found and the delivery is
 * not inserted.
 *
 * The status decides 'held' (endpoint pending its handshake) or 'pending' (due), QUEUED_STATUS, at
 * the write rather than from the caller's earlier read, which a handshake or a URL change may have
 * overtaken (a message planned as held, written just after the handshake released the held rows,
 * stayed held forever). It is exact across processes because a status change (markEndpointVerified,
 * updateEndpoint with holdQueued) first locks the endpoint FOR UPDATE, which conflicts with KEY
 * SHARE, and only then, in a later statement of its transaction, releases or holds the endpoint's
 * deliveries. Either the delivery's write came first (the status change waits for its commit, and
 * its later statement sees the row), or the status change did (the write waits for its commit and,
 * READ COMMITTED, then locks and reads the endpoint's new version). KEY SHARE and not SHARE, which
 * would also do: claims lock endpoints FOR NO KEY UPDATE SKIP LOCKED, and would skip an endpoint
 * whenever a message for it is being written.
 */
function lockedEndpointStatus(endpointId: string): string {
  return `SELECT e.status FROM endpoints e WHERE e.id = ${endpointId} FOR KEY SHARE OF e`;
}

/** The status a delivery meant to be queued is written with, given its endpoint's status `e.status`. */
const QUEUED_STATUS = "CASE WHEN e.status = 'pending' THEN 'held' ELSE 'pending' END";

/** An application by its id or, failing that, its uid ($1); getApplication and publishing share it. */
const APPLICATION_BY_ID_OR_UID =
  "SELECT * FROM applications WHERE id = $1 OR uid = $1 ORDER BY id = $1 DESC LIMIT 1";

/**
 * The scale-out backend: many Pigeon processes share one PostgreSQL database (optionally one
 * schema of it). Workers claim with `FOR UPDATE SKIP LOCKED` under a lease, share each endpoint's
 * concurrency cap and send-rate slots through the database, and wake each other with
 * LISTEN/NOTIFY; the dispatcher's poll is the safety net.
 *
 * Every method is one statement (one round trip, an implicit transaction) unless noted; writes
 * that queue work NOTIFY in the same statement, so the notification is sent on commit and only
 * then, except new messages, which announce themselves after their commit (see announceWork).
 */
export class PostgresStore implements Store {
  readonly kind = "postgres" as const;
  /** Names this store's leases (deliveries.locked_by), so claims can tell its own from others'. */
  readonly workerId = randomUUID();
  private readonly db: Database;
  private readonly listener: WorkListener;
  private closing: Promise<void> | undefined;
  /** This store has claimed, and so has a heartbeat row to remove when it closes. */
  private hasClaimed = false;
  /** Other workers live at this worker's last claim that took rows (claim.ts, `peers`). */
  private livePeers = 0;

  private constructor(
    private readonly config: PostgresConnectionConfig,
    db: Database,
  ) {
    this.db = db;
    this.listener = new WorkListener(config.client, config.channel);
  }

  /**
   * Connects, creates the schema if needed and migrates it. `url` is a `postgres://` URL; it may
   * carry `?schema=`, `?application_name=` and `?pool_size=` (the options win over the URL).
   * Rejects with a SchemaTooNewError if a newer Pigeon has migrated the database.
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    const config = resolveConnectionConfig(url, options);
    const db = new Database(createPool(config));
    try {
      await db.withClient((client) => migrate(client, config.schema));
    } catch (error) {
      await db.pool.end().catch(() => {});
      throw error;
    }
    return new PostgresStore(config, db);
  }

  /** The pool, for tests and operational tooling; the store's own statements go through `db`. */
  get pool() {
    return this.db.pool;
  }

  /** The pool with its read-retry rule, shared by the inbound inbox on this database. */
  get database(): Database {
    return this.db;
  }

  async close(): Promise<void> {
    this.closing ??= this.leaveWorkers().then(() =>
      Promise.all([this.listener.close(), this.db.pool.end()]).then(() => {}),
    );
    return this.closing;
  }

  /**
   * A worker that stops says so, so the others take its share of the endpoints at once rather
   * than once its heartbeat is too old (see claim.ts). Best effort, and never more than a second
   * of the shutdown: a store that cannot reach the database is simply forgotten later.
   */
  private async leaveWorkers(): Promise<void> {
    if (!this.hasClaimed) return;
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 1_000);
    });
    const leave = this.db.query("DELETE FROM worker_heartbeats WHERE id = $1", [this.workerId]).then(
      () => undefined,
      () => undefined,
    );
    await Promise.race([leave, giveUp]);
    clearTimeout(timer);
  }

  onNewWork(listener: () => void): () => void {
    return this.listener.subscribe(listener);
  }

  /** Resolves once the LISTEN connection is subscribed (again, after a reconnect). */
  whenListening(): Promise<void> {
    return this.listener.whenListening();
  }

  /** The LISTEN connection's backend pid while connected. */
  get listenerPid(): number | undefined {
    return this.listener.backendPid;
  }

  // Applications -------------------------------------------------------------------------------

  async createApplication(app: Application): Promise<Application> {
    const { text, values } = insertQuery("applications", applicationToRow(app));
    try {
      await this.db.query(text, values);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`An application with uid '${app.uid}' already exists.`);
      throw error;
    }
    return app;
  }

  async getApplication(idOrUid: string): Promise<Application | undefined> {
    const row = await this.db.one(APPLICATION_BY_ID_OR_UID, [idOrUid], { read: true });
    return row ? applicationFromRow(row) : undefined;
  }

  async listApplications(query: PageQuery): Promise<Page<Application>> {
    const rows = await this.db.query(
      "SELECT * FROM applications WHERE id > $1 ORDER BY id LIMIT $2",
      [query.iterator ?? "", query.limit + 1],
      { read: true },
    );
    return page(rows, query.limit, applicationFromRow, (a) => a.id);
  }

  async updateApplication(app: Application): Promise<Application> {
    const { text, values } = updateQuery("applications", applicationToRow(app), "id");
    try {
      await this.db.query(text, values);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`An application with uid '${app.uid}' already exists.`);
      throw error;
    }
    return app;
  }

  async deleteApplication(id: string): Promise<void> {
    await this.db.query("DELETE FROM applications WHERE id = $1", [id]);
  }

  // Event types --------------------------------------------------------------------------------

  async createEventType(eventType: EventType): Promise<EventType> {
    const { text, values } = insertQuery("event_types", eventTypeToRow(eventType));
    try {
      await this.db.query(text, values);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`Event type '${eventType.name}' already exists.`);
      throw error;
    }
    return eventType;
  }

  async getEventType(name: string): Promise<EventType | undefined> {
    const row = await this.db.one("SELECT * FROM event_types WHERE name = $1", [name], { read: true });
    return row ? eventTypeFromRow(row) : undefined;
  }

  async listEventTypes(query: PageQuery, includeArchived: boolean): Promise<Page<EventType>> {
    const rows = await this.db.query(
      "SELECT * FROM event_types WHERE name > $1 AND (NOT archived OR $2) ORDER BY name LIMIT $3",
      [query.iterator ?? "", includeArchived, query.limit + 1],
      { read: true },
    );
    return page(rows, query.limit, eventTypeFromRow, (e) => e.name);
  }

  async updateEventType(eventType: EventType): Promise<EventType> {
    const { text, values } = updateQuery("event_types", eventTypeToRow(eventType), "name");
    await this.db.query(text, values);
    return eventType;
  }

  async deleteEventType(name: string, expunge: boolean): Promise<void> {
    if (expunge) await this.db.query("DELETE FROM event_types WHERE name = $1", [name]);
    else
      await this.db.query("UPDATE event_types SET archived = TRUE, updated_at = $1 WHERE name = $2", [
        Date.now(),
        name,
      ]);
  }

  // Endpoints ----------------------------------------------------------------------------------

  async createEndpoint(endpoint: Endpoint): Promise<Endpoint> {
    const { text, values } = insertQuery("endpoints", endpointToRow(endpoint));
    try {
      await this.db.query(text, values);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`An endpoint with uid '${endpoint.uid}' already exists.`);
      throw error;
    }
    return endpoint;
  }

  async getEndpoint(appId: string, idOrUid: string): Promise<Endpoint | undefined> {
    const row = await this.db.one(
      "SELECT * FROM endpoints WHERE app_id = $1 AND (id = $2 OR uid = $2) ORDER BY id = $2 DESC LIMIT 1",
      [appId, idOrUid],
      { read: true },
    );
    return row ? endpointFromRow(row) : undefined;
  }

  async listEndpoints(appId: string, query: PageQuery): Promise<Page<Endpoint>> {
    const rows = await this.db.query(
      "SELECT * FROM endpoints WHERE app_id = $1 AND id > $2 ORDER BY id LIMIT $3",
      [appId, query.iterator ?? "", query.limit + 1],
      { read: true },
    );
    return page(rows, query.limit, endpointFromRow, (e) => e.id);
  }

  async loadPublishContext(appIdOrUid: string, eventType: string): Promise<PublishContext> {
    // One statement instead of three round trips (getApplication, getEventType,
    // listActiveEndpoints), read in one snapshot; the lookups are the same as theirs.
    const row = await this.db.one(
      `WITH app AS (${APPLICATION_BY_ID_OR_UID})
       SELECT (SELECT row_to_json(a) FROM app a) AS app,
              (SELECT row_to_json(e) FROM event_types e WHERE e.name = $2) AS event_type,
              (SELECT COALESCE(json_agg(row_to_json(ep) ORDER BY ep.id), '[]'::json) FROM endpoints ep
                WHERE ep.app_id = (SELECT id FROM app) AND NOT ep.disabled) AS endpoints`,
      [appIdOrUid, eventType],
      { read: true },
    );
    return {
      app: row?.app ? applicationFromRow(row.app as Row) : undefined,
      eventType: row?.event_type ? eventTypeFromRow(row.event_type as Row) : undefined,
      endpoints: ((row?.endpoints ?? []) as Row[]).map(endpointFromRow),
    };
  }

  async listActiveEndpoints(appId: string): Promise<Endpoint[]> {
    const rows = await this.db.query(
      "SELECT * FROM endpoints WHERE app_id = $1 AND NOT disabled ORDER BY id",
      [appId],
      { read: true },
    );
    return rows.map(endpointFromRow);
  }

  async updateEndpoint(
    endpoint: Endpoint,
    options: { holdQueued?: boolean; handshakeState?: boolean } = {},
  ): Promise<Endpoint> {
    const { text, values } = updateQuery(
      "endpoints",
      endpointUpdateRow(
        endpointToRow(endpoint),
        options.holdQueued === true || options.handshakeState === true,
      ),
      "id",
    );
    try {
      if (!options.holdQueued) await this.db.query(text, values);
      else
        await this.endpointStatusChange(endpoint.id, async (client) => {
          await client.query(text, values);
          // Back to pending (a new URL): what is queued or in flight waits for the new URL's
          // handshake (see the SQLite store's updateEndpoint for why in flight too).
          await client.query(
            "UPDATE deliveries SET status = 'held', updated_at = $2 WHERE endpoint_id = $1 AND status IN ('pending', 'sending')",
            [endpoint.id, endpoint.updatedAt],
          );
        });
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION)
        throw errors.conflict(`An endpoint with uid '${endpoint.uid}' already exists.`);
      throw error;
    }
    return endpoint;
  }

  async deleteEndpoint(appId: string, id: string): Promise<void> {
    await this.db.query("DELETE FROM endpoints WHERE app_id = $1 AND id = $2", [appId, id]);
  }

  async markEndpointVerified(endpointId: string, url: string, now: number): Promise<number | undefined> {
    return this.endpointStatusChange(endpointId, async (client) => {
      // Only the URL that answered: if the URL changed during the handshake, the new URL is
      // still unverified and its own handshake decides.
      const verified = await client.query(
        `UPDATE endpoints SET status = 'active', verified_at = $3, challenge = NULL, handshake_next_at = NULL,
                updated_at = $3
          WHERE id = $1 AND url = $2`,
        [endpointId, url, now],
      );
      if (verified.rowCount === 0) return undefined;
      const row = (
        await client.query<Row>(
          `WITH released AS (
             -- Due now, or later if it was due later anyway (a message's deliverAt, a retry's time).
             UPDATE deliveries SET status = 'pending', next_attempt_at = GREATEST(next_attempt_at, $2),
                    updated_at = $2
              WHERE endpoint_id = $1 AND status = 'held'
             RETURNING 1
           ),
           counted AS (SELECT count(*)::int AS n FROM released)
           SELECT n, (SELECT pg_notify($3, '') WHERE n > 0) AS notified FROM counted`,
          [endpointId, now, this.config.channel],
        )
      ).rows[0];
      return Number(row?.n ?? 0);
    });
  }

  /**
   * Runs `change` (a change of the endpoint's status and the matching release or hold of its
   * deliveries) in one transaction, after locking the endpoint row FOR UPDATE: that waits for
   * every delivery write for the endpoint in progress, and makes new ones wait until this commits
   * (see lockedEndpointStatus). The deliveries must be changed in a statement after the lock, whose
   * snapshot then includes the deliveries written before it.
   */
  private async endpointStatusChange<T>(
    endpointId: string,
    change: (client: PoolClient) => Promise<T>,
  ): Promise<T> {
    return this.db.withClient(async (client) => {
      await client.query("BEGIN");
      try {
        await client.query("SELECT 1 FROM endpoints WHERE id = $1 FOR UPDATE", [endpointId]);
        const result = await change(client);
        await client.query("COMMIT");
        return result;
      } catch (error) {
        await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    });
  }

  async listEndpointsDueForHandshake(dueBy: number, limit: number): Promise<Endpoint[]> {
    const rows = await this.db.query(
      `SELECT * FROM endpoints WHERE status = 'pending' AND handshake_next_at IS NOT NULL
         AND handshake_next_at <= $1 AND NOT disabled ORDER BY handshake_next_at LIMIT $2`,
      [dueBy, limit],
      { read: true },
    );
    return rows.map(endpointFromRow);
  }

  async scheduleHandshake(
    endpointId: string,
    attempts: number,
    nextAt: number | null,
    url?: string,
  ): Promise<void> {
    await this.db.query(
      "UPDATE endpoints SET handshake_attempts = $1, handshake_next_at = $2 WHERE id = $3 AND ($4::text IS NULL OR url = $4)",
      [attempts, nextAt, endpointId, url ?? null],
    );
  }

  // Messages -----------------------------------------------------------------------------------

  /**
   * The message and its deliveries in one statement, hence one transaction: a duplicate eventId
   * fails the whole statement and no delivery is left behind. The deliveries' key to the message is
   * checked at the end of the statement, after the message row exists; a delivery whose endpoint
   * was deleted meanwhile is not inserted (lockedEndpointStatus). Prepared: holding each endpoint in a
   * subquery made the statement dearer to plan than the key's check it replaced (publishing 7 %
   * slower in three pairs), and prepared it is cheaper than before (4 of 6 pairs, ~8 % on average).
   */
  async createMessage(message: Message, deliveries: Delivery[]): Promise<Message> {
    const m = messageToRow(message);
    const d = deliveries.map(deliveryToRow);
    const col = (key: string) => d.map((row) => row[key]);
    let due = 0;
    try {
      // A queued delivery is held or due as its endpoint is at this write (lockedEndpointStatus),
      // whatever the caller planned from its earlier read.
      const row = await this.db.one(
        `WITH message AS (
           INSERT INTO messages (id, app_id, event_id, event_type, payload, channels, tags, created_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ),
         delivery AS (
           INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, manual,
                                   last_error, created_at, updated_at)
           SELECT d.id, d.msg_id, d.endpoint_id, d.app_id,
                  CASE WHEN d.status IN ('pending', 'held') THEN ${QUEUED_STATUS} ELSE d.status END,
                  d.attempts, d.next_attempt_at, d.manual, d.last_error, d.created_at, d.updated_at
             FROM unnest($9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::int[],
                         $15::bigint[], $16::boolean[], $17::text[], $18::bigint[], $19::bigint[])
                      AS d(id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, manual,
                           last_error, created_at, updated_at)
             CROSS JOIN LATERAL (${lockedEndpointStatus("d.endpoint_id")}) e
           RETURNING status
         )
         SELECT count(*) FILTER (WHERE status = 'pending')::int AS due FROM delivery`,
        [
          m.id,
          m.app_id,
          m.event_id,
          m.event_type,
          m.payload,
          m.channels,
          m.tags,
          m.created_at,
          col("id"),
          col("msg_id"),
          col("endpoint_id"),
          col("app_id"),
          col("status"),
          col("attempts"),
          col("next_attempt_at"),
          col("manual"),
          col("last_error"),
          col("created_at"),
          col("updated_at"),
        ],
        { prepared: true },
      );
      due = Number(row?.due ?? 0);
    } catch (error) {
      if (sqlState(error) === UNIQUE_VIOLATION) {
        throw errors.conflict(
          `A message with eventId '${message.eventId}' already exists.`,
          "duplicate_event_id",
        );
      }
      throw error;
    }
    if (due > 0) this.announceWork();
    return message;
  }

  private announcing: Promise<void> | undefined;
  private announceAgain = false;

  /**
   * Wakes the workers after new messages committed: one NOTIFY at a time per process, and one
   * more for everything committed while it was on its way.
   *
   * Why not in the message's own statement, as the rarer writes below do: a transaction that
   * NOTIFYs takes PostgreSQL's database-wide notification lock at commit and holds it through
   * its WAL flush, so concurrent publishes commit one by one (measured here: 16 connections
   * inserting reach ~2,000 commits/s with NOTIFY in the transaction, ~6,000 without). The
   * notification still follows the commit; a worker that misses it finds the rows at its poll.
   */
  private announceWork(): void {
    if (this.announcing) {
      this.announceAgain = true;
      return;
    }
    this.announcing = this.db
      .query("SELECT pg_notify($1, '')", [this.config.channel])
      .then(
        () => undefined,
        () => undefined, // the poll is the safety net
      )
      .finally(() => {
        this.announcing = undefined;
        if (this.announceAgain) {
          this.announceAgain = false;
          this.announceWork();
        }
      });
  }

  async getMessage(appId: string, idOrEventId: string): Promise<Message | undefined> {
    // An id match wins over an eventId match, as on SQLite (which tries the id first).
    const row = await this.db.one(
      `SELECT * FROM messages WHERE app_id = $1 AND (id = $2 OR event_id = $2)
        ORDER BY id = $2 DESC LIMIT 1`,
      [appId, idOrEventId],
      { read: true },
    );
    return row ? messageFromRow(row) : undefined;
  }

  private messageFilters(query: MessageQuery, filters: Filters): void {
    if (query.iterator) filters.add((p) => `m.id < ${p}`, query.iterator);
    if (query.eventTypes && query.eventTypes.length > 0)
      filters.add((p) => `m.event_type = ANY (${p}::text[])`, query.eventTypes);
    if (query.channel)
      filters.add(
        (p) => `EXISTS (SELECT 1 FROM json_array_elements_text(m.channels) AS c(value) WHERE c.value = ${p})`,
        query.channel,
      );
    if (query.before !== undefined) filters.add((p) => `m.created_at < ${p}`, query.before);
    if (query.after !== undefined) filters.add((p) => `m.created_at > ${p}`, query.after);
  }

  async listMessages(appId: string, query: MessageQuery): Promise<Page<Message>> {
    const filters = new Filters([appId]);
    this.messageFilters(query, filters);
    const limit = filters.push(query.limit + 1);
    const rows = await this.db.query(
      `SELECT m.* FROM messages m WHERE m.app_id = $1${filters.sql} ORDER BY m.id DESC LIMIT ${limit}`,
      filters.values,
      { read: true },
    );
    return page(rows, query.limit, messageFromRow, (m) => m.id);
  }

  async listMessagesForEndpoint(
    appId: string,
    endpointId: string,
    query: MessageQuery,
  ): Promise<Page<Message>> {
    const filters = new Filters([appId, endpointId]);
    this.messageFilters(query, filters);
    const limit = filters.push(query.limit + 1);
    const rows = await this.db.query(
      `SELECT m.* FROM deliveries d JOIN messages m ON m.id = d.msg_id
        WHERE d.app_id = $1 AND d.endpoint_id = $2${filters.sql} ORDER BY m.id DESC LIMIT ${limit}`,
      filters.values,
      { read: true },
    );
    return page(rows, query.limit, messageFromRow, (m) => m.id);
  }

  // Idempotency --------------------------------------------------------------------------------

  async getIdempotentResponse(
    scope: string,
    key: string,
    notBefore: number,
  ): Promise<StoredResponse | undefined> {
    const row = await this.db.one(
      "SELECT status, body FROM idempotency WHERE scope = $1 AND key = $2 AND created_at >= $3",
      [scope, key, notBefore],
      { read: true },
    );
    return row ? { status: Number(row.status), body: String(row.body) } : undefined;
  }

  async putIdempotentResponse(
    scope: string,
    key: string,
    response: StoredResponse,
    now: number,
  ): Promise<void> {
    await this.db.query(
      `INSERT INTO idempotency (scope, key, status, body, created_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (scope, key) DO UPDATE
         SET status = excluded.status, body = excluded.body, created_at = excluded.created_at`,
      [scope, key, response.status, response.body, now],
    );
  }

  // Deliveries ---------------------------------------------------------------------------------

  async claimDueDeliveries(claim: ClaimRequest): Promise<ClaimedDelivery[]> {
    if (claim.limit <= 0) return [];
    this.hasClaimed = true;
    const { text, values } = claimQuery(claim, this.workerId);
    const { claimed, livePeers } = claimFromRows(await this.db.query(text, values, { prepared: true }));
    this.livePeers = livePeers ?? this.livePeers;
    return claimed;
  }

  livePeerCount(): number {
    return this.livePeers;
  }

  async completeDeliveries(outcomes: DeliveryOutcome[], now: number): Promise<void> {
    if (outcomes.length === 0) return;
    await recordIsolating(
      outcomes,
      async (batch) => {
        // This worker's id: an outcome sets a row's state only while it still holds the row's lease.
        const { text, values } = completeQuery(batch, now, this.workerId);
        await this.db.query(text, values, { prepared: true });
      },
      (outcome, what, error) =>
        console.error(
          `pigeon: PostgreSQL refused the outcome of delivery ${outcome.deliveryId} (${(error as Error).message}); ` +
            (what === "attempt"
              ? "recorded it without its attempt"
              : "left it under its lease, so it is sent again when the lease ends"),
        ),
    );
  }

  async releaseDeliveries(ids: string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    await this.db.query(
      `WITH released AS (
         UPDATE deliveries SET status = 'pending', next_attempt_at = $1, locked_until = NULL, locked_by = NULL,
                updated_at = $1
          WHERE status = 'sending' AND id = ANY ($2::text[])
         RETURNING 1
       ),
       counted AS (SELECT count(*)::int AS n FROM released)
       SELECT n, (SELECT pg_notify($3, '') WHERE n > 0) AS notified FROM counted`,
      [now, ids, this.config.channel],
    );
  }

  async getDelivery(msgId: string, endpointId: string): Promise<Delivery | undefined> {
    const row = await this.db.one(
      "SELECT * FROM deliveries WHERE msg_id = $1 AND endpoint_id = $2",
      [msgId, endpointId],
      { read: true },
    );
    return row ? deliveryFromRow(row) : undefined;
  }

  async requeueDelivery(delivery: Delivery, now: number): Promise<void> {
    // The status is decided in the statement from the endpoint as it is now (lockedEndpointStatus):
    // 'held' while it is pending its handshake.
    const { status: _planned, ...row } = deliveryToRow({
      ...delivery,
      nextAttemptAt: now,
      manual: true,
      updatedAt: now,
    });
    const columns = Object.keys(row);
    const values = [...Object.values(row), this.config.channel];
    await this.db.query(
      `WITH requeued AS (
         INSERT INTO deliveries (${columns.join(", ")}, status)
         SELECT ${columns.map((_, i) => `$${i + 1}`).join(", ")}, ${QUEUED_STATUS}
           FROM (${lockedEndpointStatus(`$${columns.indexOf("endpoint_id") + 1}`)}) e
         ON CONFLICT (msg_id, endpoint_id) DO UPDATE
           SET status = excluded.status, next_attempt_at = excluded.next_attempt_at, manual = TRUE,
               locked_until = NULL, locked_by = NULL, updated_at = excluded.updated_at
         RETURNING status
       )
       SELECT pg_notify($${values.length}, '') FROM requeued WHERE status = 'pending'`,
      values,
    );
  }

  async recoverFailedDeliveries(endpointId: string, since: number, now: number): Promise<number> {
    // Held, not due, while the endpoint is pending its handshake (lockedEndpointStatus).
    const row = await this.db.one(
      `WITH recovered AS (
         UPDATE deliveries d SET status = ${QUEUED_STATUS}, next_attempt_at = $3, manual = TRUE, updated_at = $3
           FROM (${lockedEndpointStatus("$1")}) e
          WHERE d.endpoint_id = $1 AND d.status = 'failed' AND d.created_at >= $2
         RETURNING d.status
       ),
       counted AS (SELECT count(*)::int AS n, count(*) FILTER (WHERE status = 'pending')::int AS due FROM recovered)
       SELECT n, (SELECT pg_notify($4, '') WHERE due > 0) AS notified FROM counted`,
      [endpointId, since, now, this.config.channel],
    );
    return Number(row?.n ?? 0);
  }

  async countDeliveriesByStatus(
    endpointId: string,
    since?: number,
  ): Promise<Record<Delivery["status"], number>> {
    const counts: Record<Delivery["status"], number> = {
      held: 0,
      pending: 0,
      sending: 0,
      succeeded: 0,
      failed: 0,
    };
    const rows = await this.db.query(
      // Two parts, one per index: queued rows are in the due index, the rest in the history index.
      `SELECT status, count(*)::int AS n FROM deliveries
        WHERE endpoint_id = $1 AND created_at >= $2 AND status IN ('pending', 'sending')
        GROUP BY status
       UNION ALL
       SELECT status, count(*)::int AS n FROM deliveries
        WHERE endpoint_id = $1 AND created_at >= $2 AND status NOT IN ('pending', 'sending')
        GROUP BY status`,
      [endpointId, since ?? 0],
      { read: true },
    );
    for (const row of rows) counts[String(row.status) as Delivery["status"]] = Number(row.n);
    return counts;
  }

  /**
   * One upsert: the slot is the later of now and the endpoint's next free time, and the next free
   * time moves one spacing past it. The row lock serialises workers reserving for one endpoint, so
   * the slots they get are spaced exactly as one process's would be.
   */
  async reserveSendSlot(endpointId: string, ratePerSecond: number, now: number): Promise<number> {
    const spacing = slotSpacingMs(ratePerSecond);
    try {
      const row = await this.db.one(
        `INSERT INTO endpoint_rate_slots AS s (endpoint_id, slot_at, next_free_at)
         VALUES ($1, $2::float8, $2::float8 + $3::float8)
         ON CONFLICT (endpoint_id) DO UPDATE
           SET slot_at = GREATEST($2::float8, s.next_free_at),
               next_free_at = GREATEST($2::float8, s.next_free_at) + $3::float8
         RETURNING s.slot_at AS slot`,
        [endpointId, now, spacing],
      );
      return Number(row?.slot ?? now);
    } catch (error) {
      // The endpoint was deleted meanwhile: there is nothing left to pace.
      if (sqlState(error) === FOREIGN_KEY_VIOLATION) return now;
      throw error;
    }
  }

  async nextDueAt(): Promise<number | undefined> {
    const row = await this.db.one(NEXT_DUE_SQL, [], { read: true });
    return row?.at === null || row?.at === undefined ? undefined : Number(row.at);
  }

  // Attempts -----------------------------------------------------------------------------------

  private attemptFilters(query: AttemptQuery, filters: Filters): void {
    if (query.iterator) filters.add((p) => `a.id < ${p}`, query.iterator);
    if (query.status !== undefined)
      // NULL when no attempt has that status: succeeded is never NULL, so nothing matches.
      filters.add(
        (p) => `a.succeeded IS NOT DISTINCT FROM ${p}`,
        succeededForAttemptStatus(query.status) ?? null,
      );
    if (query.endpointId) filters.add((p) => `a.endpoint_id = ${p}`, query.endpointId);
    if (query.before !== undefined) filters.add((p) => `a.created_at < ${p}`, query.before);
    if (query.after !== undefined) filters.add((p) => `a.created_at > ${p}`, query.after);
  }

  async listAttemptsByMessage(appId: string, msgId: string, query: AttemptQuery): Promise<Page<Attempt>> {
    const filters = new Filters([appId, msgId]);
    this.attemptFilters(query, filters);
    const limit = filters.push(query.limit + 1);
    const rows = await this.db.query(
      `SELECT a.* FROM attempts a JOIN messages m ON m.id = a.msg_id
        WHERE m.app_id = $1 AND a.msg_id = $2${filters.sql} ORDER BY a.id DESC LIMIT ${limit}`,
      filters.values,
      { read: true },
    );
    return page(rows, query.limit, attemptFromRow, (a) => a.id);
  }

  async listAttemptsByEndpoint(
    appId: string,
    endpointId: string,
    query: AttemptQuery,
  ): Promise<Page<Attempt>> {
    const filters = new Filters([appId]);
    this.attemptFilters({ ...query, endpointId }, filters);
    const limit = filters.push(query.limit + 1);
    const rows = await this.db.query(
      `SELECT a.* FROM attempts a JOIN endpoints e ON e.id = a.endpoint_id
        WHERE e.app_id = $1${filters.sql} ORDER BY a.id DESC LIMIT ${limit}`,
      filters.values,
      { read: true },
    );
    return page(rows, query.limit, attemptFromRow, (a) => a.id);
  }

  async getAttempt(msgId: string, attemptId: string): Promise<Attempt | undefined> {
    const row = await this.db.one(
      "SELECT * FROM attempts WHERE msg_id = $1 AND id = $2",
      [msgId, attemptId],
      {
        read: true,
      },
    );
    return row ? attemptFromRow(row) : undefined;
  }

  // Operational events -------------------------------------------------------------------------

  async recordOperationalEvent(event: OperationalEvent): Promise<void> {
    await this.db.query(
      "INSERT INTO operational_events (id, type, app_id, data, created_at) VALUES ($1, $2, $3, $4, $5)",
      [event.id, event.type, event.appId, JSON.stringify(event.data), event.createdAt],
    );
  }

  async listOperationalEvents(query: PageQuery): Promise<Page<OperationalEvent>> {
    const rows = await this.db.query(
      "SELECT * FROM operational_events WHERE id > $1 ORDER BY id LIMIT $2",
      [query.iterator ?? "", query.limit + 1],
      { read: true },
    );
    return page(rows, query.limit, operationalEventFromRow, (e) => e.id);
  }
}
