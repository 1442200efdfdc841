import type { PoolClient } from "pg";
import { quoteIdent } from "./connection.js";

/**
 * Numbered schema migrations for PostgreSQL, the same shapes as the SQLite ones with native types:
 * times are BIGINT epoch ms, flags are BOOLEAN, and JSON columns are `json` (not `jsonb`) so the
 * text round-trips exactly as on SQLite (jsonb would re-order the keys of metadata and schemas).
 * Ids and names are `COLLATE "C"`: pagination compares them with `>`/`<`, and byte order is what
 * the time-sortable ids and the SQLite backend use, whatever the database's default collation.
 *
 * Applied in order inside one transaction under `pg_advisory_xact_lock(MIGRATION_LOCK_KEY)`, the
 * version kept in `pigeon_schema_version`. Never edit a released migration: append a new one.
 */
export const POSTGRES_MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE applications (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    rate_limit INTEGER,
    metadata JSON NOT NULL DEFAULT '{}',
    handshake TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );

  CREATE TABLE event_types (
    name TEXT COLLATE "C" PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    schemas JSON,
    archived BOOLEAN NOT NULL DEFAULT FALSE,
    deprecated BOOLEAN NOT NULL DEFAULT FALSE,
    feature_flag TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );

  CREATE TABLE endpoints (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    uid TEXT COLLATE "C",
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    filter_types JSON,
    channels JSON,
    rate_limit INTEGER,
    metadata JSON NOT NULL DEFAULT '{}',
    headers JSON NOT NULL DEFAULT '{}',
    secrets JSON NOT NULL,
    status TEXT NOT NULL,
    challenge TEXT,
    verified_at BIGINT,
    handshake_attempts INTEGER NOT NULL DEFAULT 0,
    handshake_next_at BIGINT,
    timeout_ms INTEGER,
    method TEXT NOT NULL DEFAULT 'POST',
    body_format TEXT NOT NULL DEFAULT 'json',
    header_style TEXT NOT NULL DEFAULT 'webhook',
    failing_since BIGINT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (app_id, uid)
  );
  CREATE INDEX endpoints_app ON endpoints(app_id, id);
  CREATE INDEX endpoints_pending ON endpoints(handshake_next_at) WHERE status = 'pending';

  CREATE TABLE messages (
    id TEXT COLLATE "C" PRIMARY KEY,
    app_id TEXT COLLATE "C" NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    event_id TEXT COLLATE "C",
    event_type TEXT COLLATE "C" NOT NULL,
    payload TEXT NOT NULL,
    channels JSON,
    tags JSON,
    created_at BIGINT NOT NULL,
    UNIQUE (app_id, event_id)
  );
  CREATE INDEX messages_app ON messages(app_id, id);

  -- A row in 'sending' keeps its lease end in next_attempt_at (and locked_until), so expired
  -- leases come due again through the same index as new work. locked_by names the store
  -- instance (worker) holding the lease, so a claim can tell its own leases from other workers'.
  CREATE TABLE deliveries (
    id TEXT COLLATE "C" PRIMARY KEY,
    msg_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    app_id TEXT COLLATE "C" NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until BIGINT,
    locked_by TEXT,
    manual BOOLEAN NOT NULL DEFAULT FALSE,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (msg_id, endpoint_id)
  );
  -- The claim's head scan: due work in time order; finished rows stay out of the partial index.
  CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status IN ('pending', 'sending');
  -- The claim's per-endpoint pick (ORDER BY next_attempt_at LIMIT room for one endpoint).
  CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');
  -- Leases in flight, counted against each endpoint's concurrency cap; small (in-flight rows only).
  CREATE INDEX deliveries_sending ON deliveries(endpoint_id, next_attempt_at) WHERE status = 'sending';
  CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, status, created_at);

  CREATE TABLE attempts (
    id TEXT COLLATE "C" PRIMARY KEY,
    msg_id TEXT COLLATE "C" NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    endpoint_id TEXT COLLATE "C" NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    delivery_id TEXT COLLATE "C" NOT NULL,
    url TEXT NOT NULL,
    succeeded BOOLEAN NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    error_code TEXT,
    trigger_type SMALLINT NOT NULL,
    created_at BIGINT NOT NULL
  );
  CREATE INDEX attempts_msg ON attempts(msg_id, id);
  CREATE INDEX attempts_endpoint ON attempts(endpoint_id, id);

  CREATE TABLE idempotency (
    scope TEXT COLLATE "C" NOT NULL,
    key TEXT COLLATE "C" NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
  );

  CREATE TABLE operational_events (
    id TEXT COLLATE "C" PRIMARY KEY,
    type TEXT NOT NULL,
    app_id TEXT COLLATE "C",
    data JSON NOT NULL,
    created_at BIGINT NOT NULL
  );

  -- Per-endpoint send slots shared by every worker (GCRA with a burst of one, see rate-slots.ts).
  -- Fractional milliseconds, as the in-memory slots of the SQLite backend; slot_at is the slot
  -- handed out last, kept so it is returned exactly rather than as next_free_at - spacing.
  CREATE TABLE endpoint_rate_slots (
    endpoint_id TEXT COLLATE "C" PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    slot_at DOUBLE PRECISION NOT NULL,
    next_free_at DOUBLE PRECISION NOT NULL
  );

  -- Other workers' unexpired leases on one endpoint. VOLATILE on purpose: a volatile function
  -- takes a fresh snapshot for its query, so called by the claim right after it has locked the
  -- endpoint row, it sees every claim committed before that lock, even though the claim
  -- statement's own snapshot is older (READ COMMITTED). A STABLE function or a plain subquery
  -- would count from the stale snapshot and let two workers overfill an endpoint. See claim.ts.
  CREATE FUNCTION pigeon_other_leases(p_endpoint_id TEXT, p_now BIGINT, p_worker TEXT) RETURNS BIGINT
  LANGUAGE sql VOLATILE AS $$
    SELECT count(*) FROM deliveries
     WHERE endpoint_id = p_endpoint_id AND status = 'sending' AND next_attempt_at > p_now
       AND locked_by IS DISTINCT FROM p_worker
  $$;
  `,
  // 2: inbound sources, the inbox and ordering marks (src/inbound/store/postgres-inbox-store.ts),
  // the shapes of SQLite migration 2.
  `
  CREATE TABLE inbound_sources (
    id TEXT COLLATE "C" PRIMARY KEY,
    uid TEXT COLLATE "C" UNIQUE,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    secrets JSON NOT NULL,
    options JSON NOT NULL DEFAULT '{}',
    verify_failures BIGINT NOT NULL DEFAULT 0,
    last_verify_failure_at BIGINT,
    last_verify_failure_code TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
  );

  -- dedupe_key is the provider's event id on the first copy only; duplicates and id-less events
  -- keep NULL there (NULLs never collide), so the unique index is what decides "duplicate":
  -- INSERT … ON CONFLICT DO NOTHING waits for a concurrent first copy and then yields to it.
  CREATE TABLE inbox_items (
    id TEXT COLLATE "C" PRIMARY KEY,
    source_id TEXT COLLATE "C" NOT NULL REFERENCES inbound_sources(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    dedupe_key TEXT COLLATE "C",
    event_id TEXT,
    duplicate_of TEXT COLLATE "C",
    event_type TEXT,
    event_time BIGINT,
    ordering_key TEXT COLLATE "C",
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers JSON NOT NULL,
    body BYTEA NOT NULL,
    content_type TEXT,
    body_kind TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_error TEXT,
    stale BOOLEAN NOT NULL DEFAULT FALSE,
    received_at BIGINT NOT NULL,
    processed_at BIGINT,
    updated_at BIGINT NOT NULL,
    UNIQUE (source_id, dedupe_key)
  );
  -- As for deliveries: a claimed item keeps its lease end in next_attempt_at, so one partial
  -- index serves new items, retries and items whose worker died.
  CREATE INDEX inbox_due ON inbox_items(next_attempt_at, id) WHERE status IN ('received', 'processing');
  CREATE INDEX inbox_source ON inbox_items(source_id, id);
  CREATE INDEX inbox_source_status ON inbox_items(source_id, status, id);
  -- Ordering keys in flight on any worker, which a claim skips (small: leased rows only).
  CREATE INDEX inbox_keys_in_flight ON inbox_items(source_id, ordering_key, next_attempt_at)
    WHERE status = 'processing' AND ordering_key IS NOT NULL;

  CREATE TABLE inbound_order_marks (
    source_id TEXT COLLATE "C" NOT NULL REFERENCES inbound_sources(id) ON DELETE CASCADE,
    ordering_key TEXT COLLATE "C" NOT NULL,
    newest_event_time BIGINT NOT NULL,
    item_id TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (source_id, ordering_key)
  );
  `,
  // 3: attempts without foreign keys; deleting a message or an endpoint still deletes its
  // attempts, through statement triggers. Why: an outcome recorded after its endpoint was deleted
  // (the delivery was in flight) failed the key check and with it the worker's whole batch, again
  // on every retry, so that worker recorded nothing more. The complete statement now inserts
  // attempts only for deliveries it found, which the keys cannot express without racing the
  // delete. And each key check locked the message and endpoint rows (KEY SHARE), about 13 µs of
  // PostgreSQL CPU per attempt, a tenth of what recording an outcome costs. The functions keep the
  // migration's search_path, so a delete made from any session (psql, another tool) finds `attempts`.
  `
  ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_msg_id_fkey;
  ALTER TABLE attempts DROP CONSTRAINT IF EXISTS attempts_endpoint_id_fkey;
  CREATE FUNCTION pigeon_delete_attempts_of_endpoints() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    DELETE FROM attempts WHERE endpoint_id IN (SELECT id FROM gone);
    RETURN NULL;
  END $$;
  CREATE FUNCTION pigeon_delete_attempts_of_messages() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  BEGIN
    DELETE FROM attempts WHERE msg_id IN (SELECT id FROM gone);
    RETURN NULL;
  END $$;
  CREATE TRIGGER endpoints_delete_attempts AFTER DELETE ON endpoints
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pigeon_delete_attempts_of_endpoints();
  CREATE TRIGGER messages_delete_attempts AFTER DELETE ON messages
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pigeon_delete_attempts_of_messages();
  `,
  // 4: fewer index entries written per delivery. A row rewritten by an UPDATE that changes an
  // indexed column gets a new entry in every index whose predicate it meets, and a delivery is
  // rewritten when claimed and when finished: twelve entries per delivery with its attempt, against
  // about two for a pg-boss job. The due indexes hold only pending rows (a claim finds expired
  // leases through the lease index, deliveries_sending), queued rows (pending, sending) leave the
  // per-endpoint history index (the due and lease indexes cover them), and the attempts' primary key
  // leads with the message, which is what the separate message index was for. A claim now writes
  // three index entries instead of six, recording an outcome three, and its attempt two.
  `
  DROP INDEX deliveries_endpoint;
  CREATE INDEX deliveries_endpoint_history ON deliveries(endpoint_id, status, created_at)
    WHERE status NOT IN ('pending', 'sending');
  DROP INDEX deliveries_due;
  CREATE INDEX deliveries_due ON deliveries(next_attempt_at) WHERE status = 'pending';
  DROP INDEX deliveries_endpoint_due;
  CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at) WHERE status = 'pending';
  ALTER TABLE attempts DROP CONSTRAINT attempts_pkey;
  ALTER TABLE attempts ADD PRIMARY KEY (msg_id, id);
  DROP INDEX attempts_msg;
  `,
  // 5: the workers claiming from this schema, each with the time of its last claim, so that claims
  // can share the endpoints with work between the live workers (see claim.ts). A worker removes its
  // row when it stops; a killed worker's row stops counting once it is older than the claim's peer
  // timeout, and claims delete rows a day old.
  `
  CREATE TABLE worker_heartbeats (
    id TEXT COLLATE "C" PRIMARY KEY,
    seen_at BIGINT NOT NULL
  );
  `,
  // 6: deleting an endpoint deletes its deliveries through the indexes. Its foreign key's cascade
  // ran `DELETE … WHERE endpoint_id = $1`, which no index serves (each index on endpoint_id holds
  // only some statuses, migration 4), so deleting one endpoint scanned the whole table: 504 ms for
  // an endpoint with 50,000 of a million deliveries (123 ms now, deleting just its own), and an
  // application with ten endpoints scanned it ten times. A statement
  // trigger deletes them instead, one status group per partial index, as attempts are deleted
  // (migration 3). What the key also did, refusing a delivery for an endpoint that no longer exists,
  // the inserts now do themselves: they insert only while they hold the endpoint row (KEY SHARE, as
  // the key's check did), so a delete waits for them and its trigger sees their rows.
  `
  ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_endpoint_id_fkey;
  CREATE FUNCTION pigeon_delete_deliveries_of_endpoints() RETURNS trigger
  LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
  DECLARE
    -- The column's collation, or no index on it matches the comparison.
    endpoint_id_gone TEXT COLLATE "C";
  BEGIN
    FOR endpoint_id_gone IN SELECT id FROM gone LOOP
      DELETE FROM deliveries WHERE endpoint_id = endpoint_id_gone AND status = 'pending';
      DELETE FROM deliveries WHERE endpoint_id = endpoint_id_gone AND status = 'sending';
      DELETE FROM deliveries WHERE endpoint_id = endpoint_id_gone AND status NOT IN ('pending', 'sending');
    END LOOP;
    RETURN NULL;
  END $$;
  CREATE TRIGGER endpoints_delete_deliveries AFTER DELETE ON endpoints
    REFERENCING OLD TABLE AS gone FOR EACH STATEMENT EXECUTE FUNCTION pigeon_delete_deliveries_of_endpoints();
  `,
];

/**
 * Serialises migrations across every process sharing the database (any schema). The value is
 * arbitrary but fixed: "PIGEON" in ASCII.
 */
export const MIGRATION_LOCK_KEY = 0x504947454f4e;

export class PostgresSchemaTooNewError extends Error {
  constructor(found: number, known: number) {
    super(
      `The database schema is version ${found}, but this Pigeon knows only up to ${known}. ` +
        "It was written by a newer Pigeon: upgrade Pigeon rather than run an older one against it.",
    );
    this.name = "SchemaTooNewError";
  }
}

/**
 * Creates the schema if needed and applies the missing migrations in one transaction. Under the
 * advisory lock two processes starting at once take turns: the second finds nothing to do.
 */
export async function migrate(client: PoolClient, schema: string | undefined): Promise<number> {
  await client.query("BEGIN");
  try {
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    if (schema) {
      await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdent(schema)}`);
      // The pool sets search_path at connect time, possibly before the schema existed.
      await client.query(`SET LOCAL search_path TO ${quoteIdent(schema)}`);
    }
    await client.query(
      `CREATE TABLE IF NOT EXISTS pigeon_schema_version (
         version INTEGER PRIMARY KEY,
         applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
       )`,
    );
    const result = await client.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM pigeon_schema_version",
    );
    const current = result.rows[0]?.version ?? 0;
    const known = POSTGRES_MIGRATIONS.length;
    if (current > known) throw new PostgresSchemaTooNewError(current, known);
    for (let version = current; version < known; version++) {
      await client.query(POSTGRES_MIGRATIONS[version] ?? "");
      await client.query("INSERT INTO pigeon_schema_version (version) VALUES ($1)", [version + 1]);
    }
    await client.query("COMMIT");
    return known;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
