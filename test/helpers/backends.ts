import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { describe } from "vitest";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { SqliteStore } from "../../src/store/sqlite/sqlite-store.js";
import type { Store } from "../../src/store/store.js";

/**
 * The store backends every conformance test runs against, and a fresh, private database for each
 * test: a temp SQLite file, or a random schema in the PostgreSQL test database (dropped after).
 *
 * - `PIGEON_TEST_BACKENDS=sqlite,postgres` picks backends (default: both).
 * - `PIGEON_TEST_POSTGRES_URL` (default postgres://postgres@127.0.0.1:5432/test).
 * - PostgreSQL unreachable: skipped with a message locally; with CI=true the suite fails instead,
 *   so a broken CI database can never turn into silently skipped tests.
 */
export type BackendName = "sqlite" | "postgres";

const ALL_BACKENDS: readonly BackendName[] = ["sqlite", "postgres"];

export const POSTGRES_TEST_URL =
  process.env.PIGEON_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

function selectedBackends(): BackendName[] {
  const raw = process.env.PIGEON_TEST_BACKENDS?.trim();
  if (!raw) return [...ALL_BACKENDS];
  const names = raw.split(",").map((s) => s.trim().toLowerCase());
  for (const name of names) {
    if (!ALL_BACKENDS.includes(name as BackendName)) {
      throw new Error(`PIGEON_TEST_BACKENDS: unknown backend '${name}'; use ${ALL_BACKENDS.join(", ")}.`);
    }
  }
  return ALL_BACKENDS.filter((b) => names.includes(b));
}

export const BACKENDS: readonly BackendName[] = selectedBackends();

async function probePostgres(): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: POSTGRES_TEST_URL, connectionTimeoutMillis: 3_000 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${redact(POSTGRES_TEST_URL)} is not reachable (${(error as Error).message})`;
  } finally {
    await client.end().catch(() => {});
  }
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@");
}

/** Why a selected backend's tests are skipped; absent when they run. */
export const SKIP_REASON: Partial<Record<BackendName, string>> = {};

if (BACKENDS.includes("postgres")) {
  const unreachable = await probePostgres();
  if (unreachable && process.env.CI === "true") {
    throw new Error(
      `${unreachable}. CI=true: the PostgreSQL store tests must run in CI. Start PostgreSQL, set ` +
        "PIGEON_TEST_POSTGRES_URL, or deselect it with PIGEON_TEST_BACKENDS=sqlite.",
    );
  }
  if (unreachable) {
    SKIP_REASON.postgres = `${unreachable}; skipping the PostgreSQL store tests (set CI=true to fail instead).`;
    console.warn(`pigeon tests: ${SKIP_REASON.postgres}`);
  }
}

/** `describe(title, body)` once per selected backend, skipped (with the reason printed) if unreachable. */
export function describeBackends(title: string, body: (backend: BackendName) => void): void {
  for (const backend of BACKENDS) {
    describe.skipIf(SKIP_REASON[backend] !== undefined)(`${title} [${backend}]`, () => body(backend));
  }
}

/** `describe` for tests of one backend only (PostgreSQL scale-out behaviour). */
export function describeBackend(backend: BackendName, title: string, body: () => void): void {
  const selected = BACKENDS.includes(backend);
  describe.skipIf(!selected || SKIP_REASON[backend] !== undefined)(`${title} [${backend}]`, body);
}

export interface TestStore {
  backend: BackendName;
  store: Store;
  /** Another store on the same database (PostgreSQL: same schema, own pool), like a second worker. */
  openAnother(options?: { applicationName?: string }): Promise<Store>;
  /** Marks the database as migrated by a newer Pigeon (for the schema-too-new refusal). */
  setSchemaVersion(version: number): Promise<void>;
  /** PostgreSQL: the schema and application_name of this test's connections. */
  schema?: string;
  applicationName?: string;
  /** Closes every store opened here and drops the database. */
  cleanup(): Promise<void>;
}

let adminPool: pg.Pool | undefined;

/** A small pool for the harness's own statements (DROP SCHEMA, pg_terminate_backend, …). */
export function postgresAdmin(): pg.Pool {
  if (!adminPool) {
    adminPool = new pg.Pool({
      connectionString: POSTGRES_TEST_URL,
      application_name: "pigeon-test-admin",
      max: 2,
      idleTimeoutMillis: 1_000,
      allowExitOnIdle: true,
    });
    adminPool.on("error", () => {});
  }
  return adminPool;
}

export async function openTestStore(backend: BackendName): Promise<TestStore> {
  return backend === "sqlite" ? openSqliteTestStore() : openPostgresTestStore();
}

async function openSqliteTestStore(): Promise<TestStore> {
  const dir = mkdtempSync(join(tmpdir(), "pigeon-store-"));
  const file = join(dir, "pigeon.db");
  const store = SqliteStore.open(file);
  const opened: Store[] = [store];
  return {
    backend: "sqlite",
    store,
    async openAnother() {
      const another = SqliteStore.open(file);
      opened.push(another);
      return another;
    },
    async setSchemaVersion(version) {
      store.db.pragma(`user_version = ${Math.trunc(version)}`);
    },
    async cleanup() {
      for (const s of opened) await s.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function openPostgresTestStore(): Promise<TestStore> {
  const schema = `pigeon_test_${randomBytes(6).toString("hex")}`;
  const applicationName = `pigeon-test-${schema.slice("pigeon_test_".length)}`;
  const store = await PostgresStore.open(POSTGRES_TEST_URL, { schema, applicationName, poolSize: 8 });
  const opened: Store[] = [store];
  return {
    backend: "postgres",
    store,
    schema,
    applicationName,
    async openAnother(options = {}) {
      const another = await PostgresStore.open(POSTGRES_TEST_URL, {
        schema,
        applicationName: options.applicationName ?? applicationName,
        poolSize: 8,
      });
      opened.push(another);
      return another;
    },
    async setSchemaVersion(version) {
      await postgresAdmin().query(`INSERT INTO "${schema}".pigeon_schema_version (version) VALUES ($1)`, [
        version,
      ]);
    },
    async cleanup() {
      for (const s of opened) await s.close().catch(() => {});
      await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}
