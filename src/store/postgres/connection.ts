import { createHash } from "node:crypto";
import pg from "pg";

/** Options of `PostgresStore.open`; each also has a URL query parameter of the same meaning. */
export interface PostgresStoreOptions {
  /**
   * The schema Pigeon's tables live in (`?schema=` in the URL). Created if missing and set as the
   * `search_path` of every connection. Default: none, i.e. the server's search_path (`public`).
   * Letters, digits and `_` only.
   */
  schema?: string | undefined;
  /**
   * `application_name` of every connection (`?application_name=`), visible in
   * `pg_stat_activity`. Default: `pigeon`.
   */
  applicationName?: string | undefined;
  /** Most pooled connections (`?pool_size=`). The LISTEN connection comes on top. Default: 10. */
  poolSize?: number | undefined;
}

export interface PostgresConnectionConfig {
  schema: string | undefined;
  applicationName: string;
  /** NOTIFY/LISTEN channel: notifications are database-wide, so the schema is part of the name. */
  channel: string;
  /** For the pool and for the dedicated LISTEN client. */
  client: pg.ClientConfig;
  poolSize: number;
}

const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** Identifiers (and so channel names) are at most 63 bytes; a long schema name is hashed to fit. */
export function channelFor(schema: string | undefined): string {
  if (!schema) return "pigeon_work";
  const channel = `pigeon_work.${schema}`;
  if (Buffer.byteLength(channel) <= 63) return channel;
  return `pigeon_work.${createHash("sha256").update(schema).digest("hex").slice(0, 40)}`;
}

/**
 * Splits Pigeon's own parameters (`schema`, `pool_size`) off the URL and turns the rest into a
 * pg client config. The schema is set with the `options` startup parameter, so every connection
 * has its search_path before its first query, without a round trip or a race.
 */
export function resolveConnectionConfig(
  url: string,
  options: PostgresStoreOptions = {},
): PostgresConnectionConfig {
  const parsed = new URL(url);
  const params = parsed.searchParams;
  const schema = options.schema ?? (params.get("schema") || undefined);
  params.delete("schema");
  const poolSizeParam = params.get("pool_size");
  params.delete("pool_size");
  const applicationName = options.applicationName ?? (params.get("application_name") || "pigeon");
  params.delete("application_name");
  const extraOptions = params.get("options");
  params.delete("options");

  if (schema !== undefined && !SCHEMA_NAME.test(schema)) {
    throw new Error(
      `PostgreSQL schema '${schema}': use 1 to 63 letters, digits or '_', not starting with a digit.`,
    );
  }
  const poolSize = options.poolSize ?? (poolSizeParam ? Number(poolSizeParam) : 10);
  if (!Number.isInteger(poolSize) || poolSize < 1) {
    throw new Error(`PostgreSQL pool size '${poolSize}': use a whole number of at least 1.`);
  }

  const startupOptions = [extraOptions, schema ? `-c search_path=${quoteIdent(schema)}` : undefined]
    .filter(Boolean)
    .join(" ");
  const client: pg.ClientConfig = {
    connectionString: parsed.toString(),
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
  };
  if (startupOptions) client.options = startupOptions;
  return { schema, applicationName, channel: channelFor(schema), client, poolSize };
}

/** SQLSTATEs and node errors that mean "the connection is gone", not "the query was wrong". */
const CONNECTION_SQLSTATES = new Set(["57P01", "57P02", "57P03"]);
const CONNECTION_ERRNOS = new Set(["ECONNRESET", "ECONNREFUSED", "EPIPE", "ETIMEDOUT", "ENOTCONN"]);

export function isConnectionError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (CONNECTION_SQLSTATES.has(code) || code.startsWith("08") || CONNECTION_ERRNOS.has(code)) return true;
  }
  return /Connection terminated|connection error|not queryable|Client was closed/i.test(error.message);
}

export function createPool(config: PostgresConnectionConfig): pg.Pool {
  const pool = new pg.Pool({
    ...config.client,
    max: config.poolSize,
    idleTimeoutMillis: 30_000,
  });
  // An idle connection that dies (server restart, pg_terminate_backend) is reported here and
  // dropped from the pool; without a listener the 'error' event would crash the process.
  pool.on("error", () => {});
  return pool;
}
