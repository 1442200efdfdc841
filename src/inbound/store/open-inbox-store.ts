import { PigeonError } from "../../core/errors.js";
import { PostgresStore } from "../../store/postgres/postgres-store.js";
import { openSqlite, type SqliteDatabase } from "../../store/sqlite/database.js";
import type { Store } from "../../store/store.js";
import type { InboxStore } from "./inbox-store.js";
import { PostgresInboxStore } from "./postgres-inbox-store.js";
import { SqliteInboxStore } from "./sqlite-inbox-store.js";

/**
 * The inbox on the engine's own database (and connection or pool), so an inbound request and the
 * message it is forwarded as live in one SQLite file or one PostgreSQL database. A store without
 * an inbox (a custom Store implementation) gets a stand-in that refuses every call with 501, so
 * the sending side still runs on it.
 */
export function inboxStoreFor(store: Store): InboxStore {
  if (store.kind === "sqlite") {
    const db = (store as Store & { db?: SqliteDatabase }).db;
    if (db) return sqliteInboxFor(db);
  }
  if (store instanceof PostgresStore) return new PostgresInboxStore(store.database);
  return unsupportedInboxStore(store.kind);
}

/**
 * Page cache of an inbox's own connection, in KiB. Smaller than the engine's: every commit scans
 * the whole cache's page table (pcache1TruncateUnsafe, from pager_end_transaction), 6 % of the
 * inbox's CPU at 64 MiB against under 1 % at 8 MiB (perf, inbound bench); the inbox's hot pages are
 * the tails of its indexes, which 8 MiB holds many times over.
 */
const INBOX_CACHE_KIB = 8192;

/**
 * The inbox in a SQLite database. A file gets a connection of its own on the event loop (see
 * openSqliteInbox); an in-memory database can only be reached through its one connection.
 */
function sqliteInboxFor(db: SqliteDatabase): InboxStore {
  return db.memory ? new SqliteInboxStore(db) : openSqliteInbox(db.name);
}

/**
 * The inbox of a SQLite file on a connection of its own (created and migrated if new), closed
 * with the inbox.
 *
 * Why its own connection on the event loop, not a thread: the inbox used to run on a worker
 * thread so SQLite's work left the event loop. On two cores shared with the load it served, that
 * cost more than it saved: each batch's items and answers were copied between threads, and each
 * message woke a thread that took the core from the event loop. Interleaved runs of
 * `bench/inbound.ts --pigeon-only` (handler running) read 4,377 / 4,017 / 4,584 requests/s at 229 /
 * 238 / 213 µs of CPU each here, against 3,188 / 4,040 / 3,231 at 334 / 268 / 331 on the thread.
 * The fsync still waits off the event loop (WalSync), and checkpoints run on their own worker.
 */
export function openSqliteInbox(file: string): SqliteInboxStore {
  const db = openSqlite(file);
  db.pragma(`cache_size = -${INBOX_CACHE_KIB}`);
  return new SqliteInboxStore(db, { ownsConnection: true });
}

export function isUnsupportedInboxStore(store: InboxStore): boolean {
  return UNSUPPORTED.has(store);
}

const UNSUPPORTED = new WeakSet<InboxStore>();

function unsupportedInboxStore(kind: InboxStore["kind"]): InboxStore {
  const refuse = (): Promise<never> =>
    Promise.reject(
      new PigeonError(
        501,
        "inbound_unsupported",
        `Receiving webhooks is not available with this ${kind} store; run Pigeon on its built-in SQLite or PostgreSQL store for it.`,
      ),
    );
  const store: InboxStore = {
    kind,
    start: () => Promise.resolve(),
    close: () => Promise.resolve(),
    createSource: refuse,
    getSource: refuse,
    listSources: refuse,
    allSources: refuse,
    updateSource: refuse,
    deleteSource: refuse,
    addVerifyFailures: refuse,
    sourceStats: refuse,
    insertItems: refuse,
    claimItems: refuse,
    completeItems: refuse,
    releaseItems: refuse,
    nextDueAt: refuse,
    listItems: refuse,
    getItem: refuse,
    requeueItem: refuse,
  };
  UNSUPPORTED.add(store);
  return store;
}
