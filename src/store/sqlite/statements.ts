import type { RunResult, Statement } from "better-sqlite3";
import type { SqliteDatabase } from "./database.js";

type Row = Record<string, unknown>;

type Body = () => unknown;

/**
 * Prepared statements cached by their SQL text: each query is compiled once per connection; and
 * the connection's transactions, through wrappers made once.
 */
export class SqliteStatements {
  private readonly cache = new Map<string, Statement<unknown[]>>();
  /**
   * Why made once: better-sqlite3's `db.transaction(fn)` builds four wrapped functions and
   * defines their properties on every call, 1.8–2.7 % of the inbox's event loop when each commit
   * made its own (CPU profile of bench/inbound.ts). These take the body as their argument instead.
   */
  private readonly immediateTx: (body: Body) => unknown;
  private readonly nestedTx: (body: Body) => unknown;

  constructor(private readonly db: SqliteDatabase) {
    const wrapper = db.transaction((body: Body) => body());
    this.immediateTx = wrapper.immediate;
    this.nestedTx = wrapper;
  }

  /** Runs `body` in a `BEGIN IMMEDIATE … COMMIT` transaction (rolled back if it throws). */
  immediate<T>(body: () => T): T {
    return this.immediateTx(body) as T;
  }

  /**
   * Runs `body` under a savepoint of the transaction in progress, so a throw undoes only its own
   * writes (outside a transaction, in one of its own).
   */
  savepoint<T>(body: () => T): T {
    return this.nestedTx(body) as T;
  }

  prepare(sql: string): Statement<unknown[]> {
    let statement = this.cache.get(sql);
    if (!statement) {
      statement = this.db.prepare<unknown[]>(sql);
      this.cache.set(sql, statement);
    }
    return statement;
  }

  all(sql: string, ...params: unknown[]): Row[] {
    return this.prepare(sql).all(...params) as Row[];
  }

  get(sql: string, ...params: unknown[]): Row | undefined {
    return this.prepare(sql).get(...params) as Row | undefined;
  }

  run(sql: string, ...params: unknown[]): RunResult {
    return this.prepare(sql).run(...params);
  }
}
