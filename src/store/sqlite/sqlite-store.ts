import { errors } from "../../core/errors.js";
import { LocalRateSlots } from "../rate-slots.js";
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
import { openSqlite, type SqliteDatabase, sqlitePathFromUrl } from "./database.js";
import { DueEndpoints } from "./due-endpoints.js";
import {
  applicationFromRow,
  applicationToRow,
  attemptFromRow,
  attemptToRow,
  deliveryFromRow,
  deliveryToRow,
  endpointFromRow,
  endpointToRow,
  eventTypeFromRow,
  eventTypeToRow,
  insertSql,
  messageFromRow,
  messageToRow,
  operationalEventFromRow,
  updateSql,
} from "./rows.js";
import { SqliteStatements } from "./statements.js";

type Row = Record<string, unknown>;

/** A delivery's outcome: its new state, one more attempt if one was made, its lease let go. */
const APPLY_OUTCOME_SQL = `UPDATE deliveries SET status = ?, attempts = attempts + ?, next_attempt_at = ?,
  locked_until = NULL, last_error = ?, updated_at = ? WHERE id = ?`;
/** The same, only while the row is still under the lease its send was claimed with. */
const APPLY_OUTCOME_IF_LEASED_SQL = `${APPLY_OUTCOME_SQL} AND status = 'sending'`;

/** Built once: this insert runs for every attempt. */
const INSERT_ATTEMPT_SQL = insertSql(
  "attempts",
  attemptToRow({
    id: "",
    msgId: "",
    endpointId: "",
    deliveryId: "",
    url: "",
    succeeded: false,
    responseStatusCode: 0,
    response: "",
    responseDurationMs: 0,
    errorCode: null,
    triggerType: 0,
    createdAt: 0,
  }),
);

/**
 * The status a delivery is written with: one meant to be queued ('pending' or 'held') is held
 * exactly when its endpoint is pending at the write; any other status (a finished delivery) is kept.
 */
function queuedStatus(status: Delivery["status"], endpointPending: boolean): Delivery["status"] {
  if (status !== "pending" && status !== "held") return status;
  return endpointPending ? "held" : "pending";
}

/** How stale the due-endpoint hints may get before a full resync (catches other writers). */
const DUE_RESYNC_MS = 10_000;

/** A duplicate key: a UNIQUE column, or a primary key such as event_types.name. */
function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: string } | null)?.code;
  return code === "SQLITE_CONSTRAINT_UNIQUE" || code === "SQLITE_CONSTRAINT_PRIMARYKEY";
}

/** Fetches limit+1 rows so `done` is known without a count query. */
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

/**
 * The embedded backend: one SQLite file, WAL, synchronous=FULL. better-sqlite3 is synchronous,
 * so every method runs its statements inside one call; transactions are `BEGIN IMMEDIATE`.
 */
export class SqliteStore implements Store {
  readonly kind = "sqlite" as const;
  private readonly rateSlots = new LocalRateSlots();
  private readonly due = new DueEndpoints();
  private dueSyncedAt = Number.NEGATIVE_INFINITY;

  private readonly sql: SqliteStatements;

  constructor(readonly db: SqliteDatabase) {
    this.sql = new SqliteStatements(db);
  }

  static open(url: string): SqliteStore {
    const store = new SqliteStore(openSqlite(sqlitePathFromUrl(url)));
    store.releaseOrphanedLeases(Date.now());
    return store;
  }

  /**
   * One process owns a SQLite file, so at open no lease can belong to a live worker: rows left
   * in 'sending' were in flight when the previous process died. They are due again now, rather
   * than when their lease would have run out.
   */
  private releaseOrphanedLeases(now: number): void {
    this.run(
      `UPDATE deliveries SET status = 'pending', next_attempt_at = ?, locked_until = NULL, updated_at = ?
         WHERE status = 'sending'`,
      now,
      now,
    );
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

  async close(): Promise<void> {
    this.db.close();
  }

  onNewWork(_listener: () => void): () => void {
    // One process owns the file; the publisher wakes its own dispatcher.
    return () => {};
  }

  // Applications -------------------------------------------------------------------------------

  async createApplication(app: Application): Promise<Application> {
    const row = applicationToRow(app);
    try {
      this.run(insertSql("applications", row), row);
    } catch (error) {
      if (isUniqueViolation(error))
        throw errors.conflict(`An application with uid '${app.uid}' already exists.`);
      throw error;
    }
    return app;
  }

  async getApplication(idOrUid: string): Promise<Application | undefined> {
    return this.getApplicationSync(idOrUid);
  }

  async loadPublishContext(appIdOrUid: string, eventType: string): Promise<PublishContext> {
    return this.loadPublishContextSync(appIdOrUid, eventType);
  }

  /** Synchronous, for use inside an application's own SQLite transaction (the outbox). */
  loadPublishContextSync(appIdOrUid: string, eventType: string): PublishContext {
    const app = this.getApplicationSync(appIdOrUid);
    return {
      app,
      eventType: this.getEventTypeSync(eventType),
      endpoints: app ? this.listActiveEndpointsSync(app.id) : [],
    };
  }

  /** Synchronous, for use inside an application's own SQLite transaction (the outbox). */
  getApplicationSync(idOrUid: string): Application | undefined {
    // The id wins over another application's uid, whatever order the OR is answered in (as on PostgreSQL).
    const row = this.get(
      "SELECT * FROM applications WHERE id = ? OR uid = ? ORDER BY id = ? DESC LIMIT 1",
      idOrUid,
      idOrUid,
      idOrUid,
    );
    return row ? applicationFromRow(row) : undefined;
  }

  async listApplications(query: PageQuery): Promise<Page<Application>> {
    const rows = this.all(
      "SELECT * FROM applications WHERE id > ? ORDER BY id LIMIT ?",
      query.iterator ?? "",
      query.limit + 1,
    );
    return page(rows, query.limit, applicationFromRow, (a) => a.id);
  }

  async updateApplication(app: Application): Promise<Application> {
    const row = applicationToRow(app);
    try {
      this.run(updateSql("applications", row, "id"), row);
    } catch (error) {
      if (isUniqueViolation(error))
        throw errors.conflict(`An application with uid '${app.uid}' already exists.`);
      throw error;
    }
    return app;
  }

  async deleteApplication(id: string): Promise<void> {
    this.run("DELETE FROM applications WHERE id = ?", id);
  }

  // Event types --------------------------------------------------------------------------------

  async createEventType(eventType: EventType): Promise<EventType> {
    const row = eventTypeToRow(eventType);
    try {
      this.run(insertSql("event_types", row), row);
    } catch (error) {
      if (isUniqueViolation(error)) throw errors.conflict(`Event type '${eventType.name}' already exists.`);
      throw error;
    }
    return eventType;
  }

  async getEventType(name: string): Promise<EventType | undefined> {
    return this.getEventTypeSync(name);
  }

  getEventTypeSync(name: string): EventType | undefined {
    const row = this.get("SELECT * FROM event_types WHERE name = ?", name);
    return row ? eventTypeFromRow(row) : undefined;
  }

  async listEventTypes(query: PageQuery, includeArchived: boolean): Promise<Page<EventType>> {
    const rows = this.all(
      "SELECT * FROM event_types WHERE name > ? AND (archived = 0 OR ?) ORDER BY name LIMIT ?",
      query.iterator ?? "",
      includeArchived ? 1 : 0,
      query.limit + 1,
    );
    return page(rows, query.limit, eventTypeFromRow, (e) => e.name);
  }

  async updateEventType(eventType: EventType): Promise<EventType> {
    const row = eventTypeToRow(eventType);
    this.run(updateSql("event_types", row, "name"), row);
    return eventType;
  }

  async deleteEventType(name: string, expunge: boolean): Promise<void> {
    if (expunge) this.run("DELETE FROM event_types WHERE name = ?", name);
    else this.run("UPDATE event_types SET archived = 1, updated_at = ? WHERE name = ?", Date.now(), name);
  }

  // Endpoints ----------------------------------------------------------------------------------

  async createEndpoint(endpoint: Endpoint): Promise<Endpoint> {
    const row = endpointToRow(endpoint);
    try {
      this.run(insertSql("endpoints", row), row);
    } catch (error) {
      if (isUniqueViolation(error))
        throw errors.conflict(`An endpoint with uid '${endpoint.uid}' already exists.`);
      throw error;
    }
    return endpoint;
  }

  async getEndpoint(appId: string, idOrUid: string): Promise<Endpoint | undefined> {
    const row = this.get(
      "SELECT * FROM endpoints WHERE app_id = ? AND (id = ? OR uid = ?) ORDER BY id = ? DESC LIMIT 1",
      appId,
      idOrUid,
      idOrUid,
      idOrUid,
    );
    return row ? endpointFromRow(row) : undefined;
  }

  async listEndpoints(appId: string, query: PageQuery): Promise<Page<Endpoint>> {
    const rows = this.all(
      "SELECT * FROM endpoints WHERE app_id = ? AND id > ? ORDER BY id LIMIT ?",
      appId,
      query.iterator ?? "",
      query.limit + 1,
    );
    return page(rows, query.limit, endpointFromRow, (e) => e.id);
  }

  async listActiveEndpoints(appId: string): Promise<Endpoint[]> {
    return this.listActiveEndpointsSync(appId);
  }

  listActiveEndpointsSync(appId: string): Endpoint[] {
    return this.all("SELECT * FROM endpoints WHERE app_id = ? AND disabled = 0", appId).map(endpointFromRow);
  }

  async updateEndpoint(
    endpoint: Endpoint,
    options: { holdQueued?: boolean; handshakeState?: boolean } = {},
  ): Promise<Endpoint> {
    const row = endpointUpdateRow(
      endpointToRow(endpoint),
      options.holdQueued === true || options.handshakeState === true,
    );
    try {
      this.tx(() => {
        this.run(updateSql("endpoints", row, "id"), row);
        // Back to pending (a new URL): what is queued waits for the new URL's handshake, and so does
        // what is in flight ('sending'): its outcome no longer applies (the row is not under its
        // lease any more), so a failure's retry, or an expired lease, cannot send it to the new URL
        // before that URL answers. A send that succeeded at the old URL goes again to the new one
        // once it is verified: a duplicate, which at-least-once allows; a payload to a URL that
        // never agreed would not be.
        if (options.holdQueued)
          this.run(
            "UPDATE deliveries SET status = 'held', updated_at = ? WHERE endpoint_id = ? AND status IN ('pending', 'sending')",
            endpoint.updatedAt,
            endpoint.id,
          );
      });
    } catch (error) {
      if (isUniqueViolation(error))
        throw errors.conflict(`An endpoint with uid '${endpoint.uid}' already exists.`);
      throw error;
    }
    return endpoint;
  }

  async deleteEndpoint(appId: string, id: string): Promise<void> {
    this.run("DELETE FROM endpoints WHERE app_id = ? AND id = ?", appId, id);
  }

  async markEndpointVerified(endpointId: string, url: string, now: number): Promise<number | undefined> {
    return this.tx(() => {
      // Only the URL that answered: if the URL changed during the handshake, the new URL is
      // still unverified and its own handshake decides.
      const verified = this.run(
        `UPDATE endpoints SET status = 'active', verified_at = ?, challenge = NULL, handshake_next_at = NULL,
           updated_at = ? WHERE id = ? AND url = ?`,
        now,
        now,
        endpointId,
        url,
      ).changes;
      if (verified === 0) return undefined;
      this.due.note(endpointId, now);
      // Due now, or later if a row was due later anyway (a message's deliverAt, a retry's time).
      return this.run(
        `UPDATE deliveries SET status = 'pending', next_attempt_at = MAX(next_attempt_at, ?), updated_at = ?
           WHERE endpoint_id = ? AND status = 'held'`,
        now,
        now,
        endpointId,
      ).changes;
    });
  }

  async listEndpointsDueForHandshake(dueBy: number, limit: number): Promise<Endpoint[]> {
    return this.all(
      `SELECT * FROM endpoints WHERE status = 'pending' AND handshake_next_at IS NOT NULL
         AND handshake_next_at <= ? AND disabled = 0 ORDER BY handshake_next_at LIMIT ?`,
      dueBy,
      limit,
    ).map(endpointFromRow);
  }

  async scheduleHandshake(
    endpointId: string,
    attempts: number,
    nextAt: number | null,
    url?: string,
  ): Promise<void> {
    this.run(
      "UPDATE endpoints SET handshake_attempts = ?, handshake_next_at = ? WHERE id = ? AND (? IS NULL OR url = ?)",
      attempts,
      nextAt,
      endpointId,
      url ?? null,
      url ?? null,
    );
  }

  // Messages -----------------------------------------------------------------------------------

  async createMessage(message: Message, deliveries: Delivery[]): Promise<Message> {
    return this.createMessageSync(message, deliveries);
  }

  /** Inside an outer transaction this becomes a savepoint, so it commits or rolls back with it. */
  createMessageSync(message: Message, deliveries: Delivery[]): Message {
    const row = messageToRow(message);
    try {
      const written = this.tx(() => {
        this.run(insertSql("messages", row), row);
        const held = this.pendingEndpointIds(deliveries.map((d) => d.endpointId));
        return deliveries.map((delivery) => {
          const decided = {
            ...delivery,
            status: queuedStatus(delivery.status, held.has(delivery.endpointId)),
          };
          const d = deliveryToRow(decided);
          this.run(insertSql("deliveries", d), d);
          return decided;
        });
      });
      for (const d of written) if (d.status === "pending") this.due.note(d.endpointId, d.nextAttemptAt);
    } catch (error) {
      if (isUniqueViolation(error)) {
        throw errors.conflict(
          `A message with eventId '${message.eventId}' already exists.`,
          "duplicate_event_id",
        );
      }
      throw error;
    }
    return message;
  }

  async getMessage(appId: string, idOrEventId: string): Promise<Message | undefined> {
    const row =
      this.get("SELECT * FROM messages WHERE app_id = ? AND id = ?", appId, idOrEventId) ??
      this.get("SELECT * FROM messages WHERE app_id = ? AND event_id = ?", appId, idOrEventId);
    return row ? messageFromRow(row) : undefined;
  }

  private messageFilters(query: MessageQuery): { sql: string; params: unknown[] } {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (query.iterator) {
      clauses.push("m.id < ?");
      params.push(query.iterator);
    }
    if (query.eventTypes && query.eventTypes.length > 0) {
      clauses.push(`m.event_type IN (${query.eventTypes.map(() => "?").join(", ")})`);
      params.push(...query.eventTypes);
    }
    if (query.channel) {
      clauses.push("EXISTS (SELECT 1 FROM json_each(m.channels) WHERE value = ?)");
      params.push(query.channel);
    }
    if (query.before !== undefined) {
      clauses.push("m.created_at < ?");
      params.push(query.before);
    }
    if (query.after !== undefined) {
      clauses.push("m.created_at > ?");
      params.push(query.after);
    }
    return { sql: clauses.map((c) => ` AND ${c}`).join(""), params };
  }

  async listMessages(appId: string, query: MessageQuery): Promise<Page<Message>> {
    const filters = this.messageFilters(query);
    const rows = this.db
      .prepare(`SELECT m.* FROM messages m WHERE m.app_id = ?${filters.sql} ORDER BY m.id DESC LIMIT ?`)
      .all(appId, ...filters.params, query.limit + 1) as Row[];
    return page(rows, query.limit, messageFromRow, (m) => m.id);
  }

  async listMessagesForEndpoint(
    appId: string,
    endpointId: string,
    query: MessageQuery,
  ): Promise<Page<Message>> {
    const filters = this.messageFilters(query);
    const rows = this.db
      .prepare(
        `SELECT m.* FROM deliveries d JOIN messages m ON m.id = d.msg_id
           WHERE d.app_id = ? AND d.endpoint_id = ?${filters.sql} ORDER BY m.id DESC LIMIT ?`,
      )
      .all(appId, endpointId, ...filters.params, query.limit + 1) as Row[];
    return page(rows, query.limit, messageFromRow, (m) => m.id);
  }

  // Idempotency --------------------------------------------------------------------------------

  async getIdempotentResponse(
    scope: string,
    key: string,
    notBefore: number,
  ): Promise<StoredResponse | undefined> {
    const row = this.get(
      "SELECT status, body FROM idempotency WHERE scope = ? AND key = ? AND created_at >= ?",
      scope,
      key,
      notBefore,
    );
    return row ? { status: Number(row.status), body: String(row.body) } : undefined;
  }

  async putIdempotentResponse(
    scope: string,
    key: string,
    response: StoredResponse,
    now: number,
  ): Promise<void> {
    this.run(
      "INSERT OR REPLACE INTO idempotency (scope, key, status, body, created_at) VALUES (?, ?, ?, ?, ?)",
      scope,
      key,
      response.status,
      response.body,
      now,
    );
  }

  // Deliveries ---------------------------------------------------------------------------------

  async claimDueDeliveries(claim: ClaimRequest): Promise<ClaimedDelivery[]> {
    // A claim need not survive a power cut: a lost lease only means the rows are due again,
    // which at-least-once allows. So the claim commits without its own fsync (the next durable
    // commit syncs the WAL past it), which makes claiming several times cheaper.
    this.db.pragma("synchronous = NORMAL");
    try {
      return this.claimTx(claim);
    } finally {
      this.db.pragma("synchronous = FULL");
    }
  }

  private claimTx(claim: ClaimRequest): ClaimedDelivery[] {
    this.resyncDueIfStale(claim.now);
    return this.tx(() => {
      // A row in 'sending' keeps its lease end in next_attempt_at, so one index serves both new
      // work and work whose worker died: expired leases simply come due again.
      const excluded = new Set(claim.excludeEndpointIds);
      const deliveries: Delivery[] = [];
      for (const endpointId of this.due.dueBy(claim.now, excluded)) {
        const left = claim.limit - deliveries.length;
        if (left <= 0) break;
        // One process owns a SQLite file, so what this dispatcher holds is all that is in flight.
        const holdLimit = claim.endpointHoldLimit ?? claim.endpointConcurrency;
        const room = Math.min(left, holdLimit - (claim.heldByEndpoint[endpointId] ?? 0));
        if (room <= 0) continue;
        const rows = this.all(
          `SELECT * FROM deliveries WHERE endpoint_id = ? AND status IN ('pending', 'sending')
             AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?`,
          endpointId,
          claim.now,
          room,
        );
        for (const row of rows) deliveries.push(deliveryFromRow(row));
        if (rows.length < room) {
          // Nothing more due now: the next due time is the earliest row not taken (leases included).
          const next = this.get(
            `SELECT MIN(next_attempt_at) AS at FROM deliveries WHERE endpoint_id = ?
               AND status IN ('pending', 'sending') AND next_attempt_at > ?`,
            endpointId,
            claim.now,
          );
          this.due.set(endpointId, next?.at === null || next?.at === undefined ? undefined : Number(next.at));
        }
        if (rows.length > 0) this.due.note(endpointId, claim.leaseUntil);
      }
      if (deliveries.length === 0) return [];
      const ids = JSON.stringify(deliveries.map((d) => d.id));
      this.run(
        `UPDATE deliveries SET status = 'sending', next_attempt_at = ?, locked_until = ?, updated_at = ?
           WHERE id IN (SELECT value FROM json_each(?))`,
        claim.leaseUntil,
        claim.leaseUntil,
        claim.now,
        ids,
      );
      const messages = new Map(
        this.all(
          "SELECT * FROM messages WHERE id IN (SELECT value FROM json_each(?))",
          JSON.stringify([...new Set(deliveries.map((d) => d.msgId))]),
        ).map((r) => [String(r.id), messageFromRow(r)]),
      );
      const endpoints = new Map(
        this.all(
          "SELECT * FROM endpoints WHERE id IN (SELECT value FROM json_each(?))",
          JSON.stringify([...new Set(deliveries.map((d) => d.endpointId))]),
        ).map((r) => [String(r.id), endpointFromRow(r)]),
      );
      const claimed: ClaimedDelivery[] = [];
      for (const delivery of deliveries) {
        const message = messages.get(delivery.msgId);
        const endpoint = endpoints.get(delivery.endpointId);
        // Cascading deletes remove deliveries with their message or endpoint, so both exist.
        if (message && endpoint)
          claimed.push({
            delivery: { ...delivery, status: "sending" },
            message,
            endpoint,
            wasLeased: delivery.status === "sending",
          });
      }
      return claimed;
    });
  }

  async completeDeliveries(outcomes: DeliveryOutcome[], now: number): Promise<void> {
    if (outcomes.length === 0) return;
    this.tx(() => {
      const succeededEndpoints = new Set<string>();
      const failedEndpoints = new Set<string>();
      // Rows whose outcome was applied in this batch: a delivery listed twice ends in its last
      // state, as the PostgreSQL statement (which decides once per batch) leaves it.
      const appliedHere = new Set<string>();
      for (const outcome of outcomes) {
        // Applied only while the row is still under the lease its send was claimed with: one
        // queued again meanwhile (a resend set it back to 'pending') must keep that, or the
        // resend is lost. The condition rides on the update, so the common case costs nothing more.
        const values = [
          outcome.result === "retry" ? "pending" : outcome.result,
          outcome.attempt ? 1 : 0,
          outcome.nextAttemptAt ?? now,
          outcome.attempt?.errorCode ?? null,
          now,
          outcome.deliveryId,
        ];
        const applied =
          this.run(APPLY_OUTCOME_IF_LEASED_SQL, ...values).changes > 0 ||
          (appliedHere.has(outcome.deliveryId) && this.run(APPLY_OUTCOME_SQL, ...values).changes > 0);
        if (applied) appliedHere.add(outcome.deliveryId);
        else {
          // Requeued: the attempt happened and counts, but the row stays as the requeue left it
          // (due, not leased), so it is claimed and sent again. No row at all: it is gone (its
          // endpoint or application deleted while it was in flight), and its attempt would fail
          // the foreign keys and with them the whole batch, on every retry.
          const exists = outcome.attempt
            ? this.run(
                "UPDATE deliveries SET attempts = attempts + 1, updated_at = ? WHERE id = ?",
                now,
                outcome.deliveryId,
              ).changes > 0
            : this.get("SELECT 1 AS one FROM deliveries WHERE id = ?", outcome.deliveryId) !== undefined;
          if (!exists) continue;
        }
        if (outcome.attempt) this.run(INSERT_ATTEMPT_SQL, attemptToRow(outcome.attempt));
        if (applied && outcome.result === "retry")
          this.due.note(outcome.endpointId, outcome.nextAttemptAt ?? now);
        if (outcome.attempt?.succeeded) succeededEndpoints.add(outcome.endpointId);
        else if (outcome.attempt) failedEndpoints.add(outcome.endpointId);
        if (outcome.disableEndpoint) {
          const changed = this.run(
            "UPDATE endpoints SET disabled = 1, updated_at = ? WHERE id = ? AND disabled = 0",
            now,
            outcome.endpointId,
          ).changes;
          if (changed > 0) this.insertEndpointDisabledEvent(outcome, now);
        }
      }
      for (const id of succeededEndpoints) {
        this.run("UPDATE endpoints SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL", id);
      }
      for (const id of failedEndpoints) {
        if (succeededEndpoints.has(id)) continue;
        this.run("UPDATE endpoints SET failing_since = ? WHERE id = ? AND failing_since IS NULL", now, id);
      }
    });
  }

  private insertEndpointDisabledEvent(outcome: DeliveryOutcome, now: number): void {
    const endpoint = this.get(
      "SELECT id, app_id, uid, failing_since FROM endpoints WHERE id = ?",
      outcome.endpointId,
    );
    const event: OperationalEvent = {
      id: `op_${outcome.deliveryId.slice(4)}`,
      type: "endpoint.disabled",
      appId: endpoint ? String(endpoint.app_id) : null,
      data: {
        appId: endpoint?.app_id ?? null,
        endpointId: outcome.endpointId,
        endpointUid: endpoint?.uid ?? null,
        failSince: endpoint?.failing_since ? new Date(Number(endpoint.failing_since)).toISOString() : null,
        reason: outcome.disableEndpoint?.reason ?? "",
        trigger: outcome.disableEndpoint?.reason === "gone" ? "manual" : "automatic",
      },
      createdAt: now,
    };
    this.run(
      "INSERT OR IGNORE INTO operational_events (id, type, app_id, data, created_at) VALUES (?, ?, ?, ?, ?)",
      event.id,
      event.type,
      event.appId,
      JSON.stringify(event.data),
      event.createdAt,
    );
  }

  async releaseDeliveries(ids: string[], now: number): Promise<void> {
    if (ids.length === 0) return;
    const released = this.all(
      `UPDATE deliveries SET status = 'pending', next_attempt_at = ?, locked_until = NULL, updated_at = ?
         WHERE status = 'sending' AND id IN (SELECT value FROM json_each(?)) RETURNING endpoint_id`,
      now,
      now,
      JSON.stringify(ids),
    );
    for (const row of released) this.due.note(String(row.endpoint_id), now);
  }

  async getDelivery(msgId: string, endpointId: string): Promise<Delivery | undefined> {
    const row = this.get("SELECT * FROM deliveries WHERE msg_id = ? AND endpoint_id = ?", msgId, endpointId);
    return row ? deliveryFromRow(row) : undefined;
  }

  async requeueDelivery(delivery: Delivery, now: number): Promise<void> {
    // Read and written in one transaction: the status is the endpoint's as of the write.
    this.tx(() => {
      const held = this.pendingEndpointIds([delivery.endpointId]).has(delivery.endpointId);
      const row = deliveryToRow({
        ...delivery,
        status: held ? "held" : "pending",
        nextAttemptAt: now,
        manual: true,
        updatedAt: now,
      });
      this.run(
        `${insertSql("deliveries", row)} ON CONFLICT (msg_id, endpoint_id) DO UPDATE SET status = excluded.status,
           next_attempt_at = excluded.next_attempt_at, manual = 1, updated_at = excluded.updated_at`,
        row,
      );
      if (!held) this.due.note(delivery.endpointId, now);
    });
  }

  async recoverFailedDeliveries(endpointId: string, since: number, now: number): Promise<number> {
    return this.tx(() => {
      const held = this.pendingEndpointIds([endpointId]).has(endpointId);
      if (!held) this.due.note(endpointId, now);
      return this.run(
        `UPDATE deliveries SET status = ?, next_attempt_at = ?, manual = 1, updated_at = ?
           WHERE endpoint_id = ? AND status = 'failed' AND created_at >= ?`,
        held ? "held" : "pending",
        now,
        now,
        endpointId,
        since,
      ).changes;
    });
  }

  /**
   * Which of these endpoints are pending their handshake, read inside the writer's transaction.
   * Every write that queues a delivery decides 'held' or 'pending' from this rather than from an
   * earlier read: a message planned while its endpoint was pending, written after the handshake
   * released the held rows, stayed held forever.
   */
  private pendingEndpointIds(endpointIds: string[]): Set<string> {
    if (endpointIds.length === 0) return new Set();
    return new Set(
      this.all(
        "SELECT id FROM endpoints WHERE status = 'pending' AND id IN (SELECT value FROM json_each(?))",
        JSON.stringify(endpointIds),
      ).map((r) => String(r.id)),
    );
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
    const rows = this.all(
      "SELECT status, COUNT(*) AS n FROM deliveries WHERE endpoint_id = ? AND created_at >= ? GROUP BY status",
      endpointId,
      since ?? 0,
    );
    for (const row of rows) counts[String(row.status) as Delivery["status"]] = Number(row.n);
    return counts;
  }

  async reserveSendSlot(endpointId: string, ratePerSecond: number, now: number): Promise<number> {
    return this.rateSlots.reserve(endpointId, ratePerSecond, now);
  }

  async nextDueAt(): Promise<number | undefined> {
    this.resyncDueIfStale(Date.now());
    return this.due.nextDueAt();
  }

  /** Rebuilds the due-endpoint hints from the table: at open, and every few seconds after. */
  private resyncDueIfStale(now: number): void {
    if (now - this.dueSyncedAt < DUE_RESYNC_MS) return;
    this.dueSyncedAt = now;
    const rows = this.all(
      `SELECT endpoint_id, MIN(next_attempt_at) AS at FROM deliveries
         WHERE status IN ('pending', 'sending') GROUP BY endpoint_id`,
    );
    this.due.replaceAll(rows.map((r) => [String(r.endpoint_id), Number(r.at)]));
  }

  // Attempts -----------------------------------------------------------------------------------

  private attemptFilters(query: AttemptQuery): { sql: string; params: unknown[] } {
    const clauses: string[] = [];
    const params: unknown[] = [];
    if (query.iterator) {
      clauses.push("a.id < ?");
      params.push(query.iterator);
    }
    if (query.status !== undefined) {
      const succeeded = succeededForAttemptStatus(query.status);
      // -1: no attempt has that status (succeeded is 0 or 1).
      clauses.push("a.succeeded = ?");
      params.push(succeeded === undefined ? -1 : succeeded ? 1 : 0);
    }
    if (query.endpointId) {
      clauses.push("a.endpoint_id = ?");
      params.push(query.endpointId);
    }
    if (query.before !== undefined) {
      clauses.push("a.created_at < ?");
      params.push(query.before);
    }
    if (query.after !== undefined) {
      clauses.push("a.created_at > ?");
      params.push(query.after);
    }
    return { sql: clauses.map((c) => ` AND ${c}`).join(""), params };
  }

  async listAttemptsByMessage(appId: string, msgId: string, query: AttemptQuery): Promise<Page<Attempt>> {
    const filters = this.attemptFilters(query);
    const rows = this.db
      .prepare(
        `SELECT a.* FROM attempts a JOIN messages m ON m.id = a.msg_id
           WHERE m.app_id = ? AND a.msg_id = ?${filters.sql} ORDER BY a.id DESC LIMIT ?`,
      )
      .all(appId, msgId, ...filters.params, query.limit + 1) as Row[];
    return page(rows, query.limit, attemptFromRow, (a) => a.id);
  }

  async listAttemptsByEndpoint(
    appId: string,
    endpointId: string,
    query: AttemptQuery,
  ): Promise<Page<Attempt>> {
    const filters = this.attemptFilters({ ...query, endpointId });
    const rows = this.db
      .prepare(
        `SELECT a.* FROM attempts a JOIN endpoints e ON e.id = a.endpoint_id
           WHERE e.app_id = ?${filters.sql} ORDER BY a.id DESC LIMIT ?`,
      )
      .all(appId, ...filters.params, query.limit + 1) as Row[];
    return page(rows, query.limit, attemptFromRow, (a) => a.id);
  }

  async getAttempt(msgId: string, attemptId: string): Promise<Attempt | undefined> {
    const row = this.get("SELECT * FROM attempts WHERE msg_id = ? AND id = ?", msgId, attemptId);
    return row ? attemptFromRow(row) : undefined;
  }

  // Operational events -------------------------------------------------------------------------

  async recordOperationalEvent(event: OperationalEvent): Promise<void> {
    this.run(
      "INSERT INTO operational_events (id, type, app_id, data, created_at) VALUES (?, ?, ?, ?, ?)",
      event.id,
      event.type,
      event.appId,
      JSON.stringify(event.data),
      event.createdAt,
    );
  }

  async listOperationalEvents(query: PageQuery): Promise<Page<OperationalEvent>> {
    const rows = this.all(
      "SELECT * FROM operational_events WHERE id > ? ORDER BY id LIMIT ?",
      query.iterator ?? "",
      query.limit + 1,
    );
    return page(rows, query.limit, operationalEventFromRow, (e) => e.id);
  }
}
