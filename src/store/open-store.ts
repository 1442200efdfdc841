import { SqliteStore } from "./sqlite/sqlite-store.js";
import type { Store } from "./store.js";

/** Picks the backend from PIGEON_DATABASE_URL: postgres:// URLs open the PostgreSQL store. */
export async function openStore(databaseUrl: string): Promise<Store> {
  if (/^postgres(ql)?:\/\//.test(databaseUrl)) {
    // Loaded on demand: an embedded SQLite deployment never needs the pg driver.
    const { PostgresStore } = await import("./postgres/postgres-store.js");
    return PostgresStore.open(databaseUrl);
  }
  return SqliteStore.open(databaseUrl);
}
