import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { SQLITE_MIGRATIONS } from "./migrations.js";

export type SqliteDatabase = Database.Database;

/** Accepts `sqlite:path`, `sqlite://path`, `file:path` or a plain path. */
export function sqlitePathFromUrl(url: string): string {
  const match = /^(?:sqlite:(?:\/\/)?|file:(?:\/\/)?)(.*)$/.exec(url);
  return match ? (match[1] ?? "") : url;
}

/**
 * Opens the database durably: WAL with synchronous=FULL fsyncs every commit, so a row that was
 * committed before we answered 2xx survives a kill or power loss. busy_timeout lets a second
 * process (the CLI, a test) read while the server writes.
 */
export function openSqlite(path: string): SqliteDatabase {
  if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
  db.pragma("busy_timeout = 5000");
  db.pragma("cache_size = -65536");
  migrate(db);
  return db;
}

export class SchemaTooNewError extends Error {
  constructor(found: number, known: number) {
    super(
      `The database schema is version ${found}, but this Pigeon knows only up to ${known}. ` +
        "It was written by a newer Pigeon: upgrade Pigeon rather than run an older one against it.",
    );
  }
}

export function migrate(db: SqliteDatabase): void {
  // IMMEDIATE takes the write lock up front, so two processes starting at once cannot both migrate.
  const apply = db.transaction(() => {
    const current = db.pragma("user_version", { simple: true }) as number;
    if (current > SQLITE_MIGRATIONS.length) throw new SchemaTooNewError(current, SQLITE_MIGRATIONS.length);
    for (let version = current; version < SQLITE_MIGRATIONS.length; version++) {
      db.exec(SQLITE_MIGRATIONS[version] ?? "");
      db.pragma(`user_version = ${version + 1}`);
    }
  });
  apply.immediate();
}
