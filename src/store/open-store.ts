import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

/** Picks the backend from PIGEON_DATABASE_URL: postgres:// URLs need the PostgreSQL store. */
export async function openStore(databaseUrl: string): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new Error(
      "PIGEON_DATABASE_URL: PostgreSQL is not available in this build yet; use a SQLite path (the default).",
    );
  }
  return SqliteStore.open(databaseUrl);
}
