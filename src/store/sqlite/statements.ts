import type { RunResult, Statement } from "better-sqlite3";
import type { SqliteDatabase } from "./database.js";

type Row = Record<string, unknown>;

/** Prepared statements cached by their SQL text: each query is compiled once per connection. */
export class SqliteStatements {
  private readonly cache = new Map<string, Statement<unknown[]>>();

  constructor(private readonly db: SqliteDatabase) {}

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
