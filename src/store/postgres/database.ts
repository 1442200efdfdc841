import type pg from "pg";
import { isConnectionError } from "./connection.js";
import type { Row } from "./rows.js";

export interface QueryOptions {
  /**
   * The statement only reads, so running it twice is harmless: if its connection was killed under
   * it (server restart, failover, pg_terminate_backend), it is retried once on a fresh one. Writes
   * are never retried here: the connection may have died after the commit, and the caller (the
   * dispatcher, the API client) knows better whether to try again.
   */
  read?: boolean;
  /**
   * A hot statement (claims, outcomes): run as a named prepared statement, so each connection
   * parses and analyses its text once instead of on every call. Only for fixed text: every
   * distinct text stays prepared on every connection for the connection's life.
   */
  prepared?: boolean;
}

/** Names of prepared statements by text; the texts are the store's fixed SQL constants. */
const statementNames = new Map<string, string>();

/** A hot statement's name on every connection, for queries run on a transaction's client. */
export function preparedQuery(text: string, values: unknown[]): pg.QueryConfig {
  return { name: statementName(text), text, values };
}

function statementName(text: string): string {
  let name = statementNames.get(text);
  if (name === undefined) {
    name = `pigeon_${statementNames.size + 1}`;
    statementNames.set(text, name);
  }
  return name;
}

/** The pool plus the one retry rule; every statement of the store goes through here. */
export class Database {
  constructor(readonly pool: pg.Pool) {}

  async query(text: string, values: unknown[] = [], options: QueryOptions = {}): Promise<Row[]> {
    const query = options.prepared ? preparedQuery(text, values) : { text, values };
    const run = () => this.withClient(async (client) => (await client.query<Row>(query)).rows);
    try {
      return await run();
    } catch (error) {
      if (!options.read || !isConnectionError(error)) throw error;
      // Let pending socket events land first: the pool then drops the other idle connections
      // that died with this one instead of handing the retry one of them.
      await new Promise((resolve) => setImmediate(resolve));
      return await run();
    }
  }

  async one(text: string, values: unknown[] = [], options: QueryOptions = {}): Promise<Row | undefined> {
    return (await this.query(text, values, options))[0];
  }

  /**
   * Checks a connection out for `fn`. Unlike `pool.query`, a statement error (a unique violation)
   * returns the connection to the pool; only a dead connection is thrown away.
   */
  async withClient<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await this.pool.connect();
    // While checked out the pool's idle 'error' listener is detached: a connection killed between
    // statements would emit an unhandled 'error' and crash the process.
    const onError = () => {};
    client.on("error", onError);
    let broken: Error | undefined;
    try {
      return await fn(client);
    } catch (error) {
      if (isConnectionError(error)) broken = error as Error;
      throw error;
    } finally {
      client.off("error", onError);
      // Passing an error destroys the connection instead of returning it to the pool.
      client.release(broken);
    }
  }
}
