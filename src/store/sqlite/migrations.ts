/**
 * Numbered schema migrations. Applied in order under `BEGIN IMMEDIATE` (one writer at a time),
 * the schema version kept in `PRAGMA user_version`. A database whose version is newer than the
 * newest migration here was written by a newer Pigeon: we refuse to run rather than guess.
 */
export const SQLITE_MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE applications (
    id TEXT PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    rate_limit INTEGER,
    metadata TEXT NOT NULL DEFAULT '{}',
    handshake TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE event_types (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    schemas TEXT,
    archived INTEGER NOT NULL DEFAULT 0,
    deprecated INTEGER NOT NULL DEFAULT 0,
    feature_flag TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  CREATE TABLE endpoints (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    uid TEXT,
    url TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 1,
    disabled INTEGER NOT NULL DEFAULT 0,
    filter_types TEXT,
    channels TEXT,
    rate_limit INTEGER,
    metadata TEXT NOT NULL DEFAULT '{}',
    headers TEXT NOT NULL DEFAULT '{}',
    secrets TEXT NOT NULL,
    status TEXT NOT NULL,
    challenge TEXT,
    verified_at INTEGER,
    handshake_attempts INTEGER NOT NULL DEFAULT 0,
    handshake_next_at INTEGER,
    timeout_ms INTEGER,
    method TEXT NOT NULL DEFAULT 'POST',
    body_format TEXT NOT NULL DEFAULT 'json',
    header_style TEXT NOT NULL DEFAULT 'webhook',
    failing_since INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (app_id, uid)
  );
  CREATE INDEX endpoints_app ON endpoints(app_id, id);
  CREATE INDEX endpoints_pending ON endpoints(status, handshake_next_at) WHERE status = 'pending';

  CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    app_id TEXT NOT NULL REFERENCES applications(id) ON DELETE CASCADE,
    event_id TEXT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    channels TEXT,
    tags TEXT,
    created_at INTEGER NOT NULL,
    UNIQUE (app_id, event_id)
  );
  CREATE INDEX messages_app ON messages(app_id, id);

  CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    app_id TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    locked_until INTEGER,
    manual INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    UNIQUE (msg_id, endpoint_id)
  );
  -- No status column: a status change (every claim and every completion) then leaves this index alone.
  CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, created_at);
  -- Claims probe one endpoint at a time, so an endpoint at its cap never has to be scanned past.
  CREATE INDEX deliveries_endpoint_due ON deliveries(endpoint_id, next_attempt_at)
    WHERE status IN ('pending', 'sending');

  CREATE TABLE attempts (
    id TEXT PRIMARY KEY,
    msg_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    endpoint_id TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    delivery_id TEXT NOT NULL,
    url TEXT NOT NULL,
    succeeded INTEGER NOT NULL,
    response_status_code INTEGER NOT NULL,
    response TEXT NOT NULL,
    response_duration_ms INTEGER NOT NULL,
    error_code TEXT,
    trigger_type INTEGER NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX attempts_msg ON attempts(msg_id, id);
  CREATE INDEX attempts_endpoint ON attempts(endpoint_id, id);

  CREATE TABLE idempotency (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    status INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, key)
  );

  CREATE TABLE operational_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    app_id TEXT,
    data TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  `,
  // 2: inbound sources, the inbox and ordering marks (src/inbound/store/sqlite-inbox-store.ts)
  `
  CREATE TABLE inbound_sources (
    id TEXT PRIMARY KEY,
    uid TEXT UNIQUE,
    name TEXT NOT NULL,
    provider TEXT NOT NULL,
    secrets TEXT NOT NULL,
    options TEXT NOT NULL DEFAULT '{}',
    verify_failures INTEGER NOT NULL DEFAULT 0,
    last_verify_failure_at INTEGER,
    last_verify_failure_code TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
  );

  -- dedupe_key is the provider's event id on the first copy only; duplicates and id-less events
  -- keep NULL there (NULLs never collide), so the unique index is what decides "duplicate".
  CREATE TABLE inbox_items (
    id TEXT PRIMARY KEY,
    source_id TEXT NOT NULL REFERENCES inbound_sources(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    dedupe_key TEXT,
    event_id TEXT,
    duplicate_of TEXT,
    event_type TEXT,
    event_time INTEGER,
    ordering_key TEXT,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    query TEXT NOT NULL,
    headers TEXT NOT NULL,
    body BLOB NOT NULL,
    content_type TEXT,
    body_kind TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    last_error TEXT,
    stale INTEGER NOT NULL DEFAULT 0,
    received_at INTEGER NOT NULL,
    processed_at INTEGER,
    updated_at INTEGER NOT NULL,
    UNIQUE (source_id, dedupe_key)
  );
  -- As for deliveries: a claimed item keeps its lease end in next_attempt_at, so one partial
  -- index serves new items, retries and items whose worker died.
  CREATE INDEX inbox_due ON inbox_items(next_attempt_at, id) WHERE status IN ('received', 'processing');
  CREATE INDEX inbox_source ON inbox_items(source_id, id);
  CREATE INDEX inbox_source_status ON inbox_items(source_id, status, id);

  CREATE TABLE inbound_order_marks (
    source_id TEXT NOT NULL REFERENCES inbound_sources(id) ON DELETE CASCADE,
    ordering_key TEXT NOT NULL,
    newest_event_time INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    PRIMARY KEY (source_id, ordering_key)
  );
  `,
  // 3: the inbox lists a source's items through inbox_source_status alone (one range per status,
  // merged: see SqliteInboxStore.listItems). Every insert wrote an entry to inbox_source as well:
  // ~3 WAL pages more per commit of 17 items (bench/probes/inbox-commit.ts), for a listing the other
  // index serves.
  `
  DROP INDEX IF EXISTS inbox_source;
  `,
];
