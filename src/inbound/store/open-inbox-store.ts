import { PigeonError } from "../../core/errors.js";
import { PostgresStore } from "../../store/postgres/postgres-store.js";
import type { SqliteDatabase } from "../../store/sqlite/database.js";
import type { Store } from "../../store/store.js";
import type { InboxStore } from "./inbox-store.js";
import { PostgresInboxStore } from "./postgres-inbox-store.js";
import { SqliteInboxStore } from "./sqlite-inbox-store.js";
import { ThreadedInboxStore } from "./threaded-inbox-store.js";

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
 * The inbox in a SQLite database: a file gets the inbox thread (see ThreadedInboxStore), which
 * opens its own connection; an in-memory database can only be reached through its one connection.
 */
export function sqliteInboxFor(db: SqliteDatabase): InboxStore {
  return db.memory ? new SqliteInboxStore(db) : new ThreadedInboxStore(db.name);
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
