import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SqliteStatements } from "../../src/store/sqlite/statements.js";

// The transaction helpers every SQLite store commits through: one wrapper made per connection
// and reused, so each call must still begin, commit and roll back on its own.

describe("SqliteStatements transactions", () => {
  let dir: string;
  let db: Database.Database;
  let sql: SqliteStatements;
  const names = () => sql.all("SELECT name FROM t ORDER BY name").map((r) => r.name);

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-statements-"));
    db = new Database(join(dir, "t.db"));
    db.pragma("journal_mode = WAL");
    db.exec("CREATE TABLE t (name TEXT PRIMARY KEY)");
    sql = new SqliteStatements(db);
  });
  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("commits each immediate transaction and returns what its body returns", () => {
    expect(sql.immediate(() => sql.run("INSERT INTO t VALUES ('a')").changes)).toBe(1);
    expect(db.inTransaction).toBe(false);
    sql.immediate(() => sql.run("INSERT INTO t VALUES ('b')"));
    // Another connection sees both: they were committed, not left open.
    const other = new Database(join(dir, "t.db"), { readonly: true });
    expect(other.prepare("SELECT count(*) AS n FROM t").get()).toEqual({ n: 2 });
    other.close();
  });

  it("rolls back a body that throws, and the next call starts afresh", () => {
    expect(() =>
      sql.immediate(() => {
        sql.run("INSERT INTO t VALUES ('lost')");
        throw new Error("no");
      }),
    ).toThrow("no");
    expect(db.inTransaction).toBe(false);
    sql.immediate(() => sql.run("INSERT INTO t VALUES ('kept')"));
    expect(names()).toEqual(["kept"]);
  });

  it("undoes only a failed savepoint's writes inside a transaction", () => {
    sql.immediate(() => {
      sql.run("INSERT INTO t VALUES ('outer')");
      expect(() =>
        sql.savepoint(() => {
          sql.run("INSERT INTO t VALUES ('inner')");
          sql.run("INSERT INTO t VALUES ('outer')"); // duplicate key: the savepoint fails
        }),
      ).toThrow(/UNIQUE/);
      sql.savepoint(() => sql.run("INSERT INTO t VALUES ('second')"));
    });
    expect(names()).toEqual(["outer", "second"]);
  });
});
