import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openSqliteInbox } from "../../src/inbound/store/open-inbox-store.js";
import { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import { openSqlite } from "../../src/store/sqlite/database.js";
import { testItem as item, testSource as source } from "../helpers/inbox.js";

/**
 * What only the SQLite inbox does: WAL checkpoints off the event loop, de-duplication across
 * processes writing one file, and a file's inbox opened as the engine opens it (a connection of its
 * own, concurrent inserts sharing fsyncs). The InboxStore contract itself is in
 * inbox-store.conformance.test.ts.
 */
describe("SqliteInboxStore", () => {
  let dir: string;
  let store: SqliteInboxStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-inbox-"));
    store = new SqliteInboxStore(openSqlite(join(dir, "inbox.db")));
    await store.createSource(source("src_a"));
    await store.createSource(source("src_b"));
  });
  afterEach(async () => {
    await store.close();
    if (store.db.open) store.db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps one per-source index on the inbox, and a database of schema 2 loses the other on upgrade", async () => {
    const indexes = (db: SqliteInboxStore["db"]) =>
      (
        db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'inbox_items'")
          .all() as {
          name: string;
        }[]
      )
        .map((r) => r.name)
        .filter((name) => !name.startsWith("sqlite_autoindex"))
        .sort();
    expect(indexes(store.db)).toEqual(["inbox_due", "inbox_source_status"]);
    // As schema 2 left it: the index back, the version one lower, an item stored.
    await store.insertItems([item("src_a", { id: "in_old" })]);
    store.db.exec("CREATE INDEX inbox_source ON inbox_items(source_id, id)");
    const version = Number(store.db.pragma("user_version", { simple: true }));
    store.db.pragma(`user_version = ${version - 1}`);
    await store.close();
    store.db.close();
    store = new SqliteInboxStore(openSqlite(join(dir, "inbox.db")));
    expect(indexes(store.db)).toEqual(["inbox_due", "inbox_source_status"]);
    expect(Number(store.db.pragma("user_version", { simple: true }))).toBe(version);
    expect((await store.listItems("src_a", { limit: 10 })).data.map((i) => i.id)).toEqual(["in_old"]);
  });

  it("checkpoints on a worker thread while started, and hands checkpoints back to SQLite when closed", async () => {
    const file = join(dir, "inbox.db");
    expect(store.db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
    await store.start();
    expect(store.db.pragma("wal_autocheckpoint", { simple: true })).toBe(0);
    const before = statSync(file).size;
    // About 2,000 WAL pages; with automatic checkpoints off only the worker moves them over.
    for (let i = 0; i < 20; i++) {
      await store.insertItems(
        Array.from({ length: 100 }, () => item("src_a", { body: Buffer.alloc(3000, 7) })),
      );
    }
    await new Promise((r) => setTimeout(r, 400));
    expect(statSync(file).size).toBeGreaterThan(before + 4_000_000);
    await store.close();
    expect(store.db.pragma("wal_autocheckpoint", { simple: true })).toBe(1000);
  });

  it("de-duplicates across processes writing the same events at once (the unique index decides)", async () => {
    await store.close();
    store.db.close();
    const file = join(dir, "inbox.db");
    const moduleUrl = new URL(
      `file://${resolve(import.meta.dirname, "../../dist/inbound/store/sqlite-inbox-store.js")}`,
    ).href;
    const dbUrl = new URL(`file://${resolve(import.meta.dirname, "../../dist/store/sqlite/database.js")}`)
      .href;
    // Each writer inserts the same 200 event ids, in its own order, one small batch at a time.
    const script = `
      const { SqliteInboxStore } = await import(${JSON.stringify(moduleUrl)});
      const { openSqlite } = await import(${JSON.stringify(dbUrl)});
      const store = new SqliteInboxStore(openSqlite(process.argv[1]));
      const ids = Array.from({ length: 200 }, (_, i) => "evt_" + i).sort(() => Math.random() - 0.5);
      let received = 0, n = 0;
      for (let i = 0; i < ids.length; i += 5) {
        const batch = ids.slice(i, i + 5).map((eventId) => ({ id: "in_" + process.pid + "_" + (n++), sourceId: "src_a", eventId,
          eventType: null, eventTime: null, orderingKey: null, method: "POST", path: "/", query: "", headers: {},
          body: Buffer.from("{}"), contentType: null, bodyKind: "json", receivedAt: Date.now() }));
        for (const o of await store.insertItems(batch)) if (o.status === "received") received++;
      }
      console.log(received);
    `;
    const run = () =>
      new Promise<number>((done, fail) => {
        const child = spawn(process.execPath, ["--input-type=module", "-e", script, file], {
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        child.stdout.on("data", (d: Buffer) => (out += d.toString()));
        child.stderr.on("data", (d: Buffer) => (err += d.toString()));
        child.on("exit", (code) => (code === 0 ? done(Number(out.trim())) : fail(new Error(err))));
      });
    const counts = await Promise.all([run(), run(), run(), run()]);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(200);
    store = new SqliteInboxStore(openSqlite(file));
    const stats = await store.sourceStats("src_a");
    expect(stats.counts).toMatchObject({ received: 200, duplicate: 600 });
  });

  it("a file's inbox: inserts made at once wait for their fsync together, answered in order and de-duplicated across them", async () => {
    await store.close();
    store.db.close();
    // As the engine opens it: a connection of its own, closed with the inbox.
    store = openSqliteInbox(join(dir, "inbox.db"));
    const [first, second, third] = await Promise.all([
      store.insertItems([
        item("src_a", { eventId: "evt_1", body: Buffer.from('{"n":1}') }),
        item("src_a", { eventId: "evt_2" }),
      ]),
      store.insertItems([item("src_a", { eventId: "evt_1", body: Buffer.from('{"n":2}') })]),
      store.insertItems([item("src_a")]),
    ]);
    expect(first!.map((o) => o.status)).toEqual(["received", "received"]);
    expect(second).toEqual([{ id: expect.any(String), status: "duplicate", duplicateOf: first![0]!.id }]);
    expect(third!.map((o) => o.status)).toEqual(["received"]);
    expect((await store.getItem("src_a", first![0]!.id))?.body.toString()).toBe('{"n":1}');
    expect(store.db.pragma("cache_size", { simple: true })).toBe(-8192);
    await store.close();
    expect(store.db.open).toBe(false);
  });

  it("closing a file's inbox finishes in a process with nothing else to wait for", async () => {
    // The checkpoint worker never keeps a process alive; its exit, awaited by close(), must, or the
    // process ended inside close() (exit code 13: an unsettled top-level await) and the inbox's
    // connection was never closed.
    const moduleUrl = new URL(
      `file://${resolve(import.meta.dirname, "../../dist/inbound/store/open-inbox-store.js")}`,
    ).href;
    const script = `
      const { openSqliteInbox } = await import(${JSON.stringify(moduleUrl)});
      const inbox = openSqliteInbox(process.argv[2]);
      await inbox.start();
      await new Promise((resolve) => setTimeout(resolve, 200));
      await inbox.close();
      console.log(inbox.db.open ? "still open" : "closed");
    `;
    // A file, not `--input-type=module -e`: workers inherit that flag, and the checkpoint worker's
    // CommonJS source would fail under it (no worker, nothing to wait for).
    const scriptFile = join(dir, "close-inbox.mjs");
    writeFileSync(scriptFile, script);
    const { code, out } = await new Promise<{ code: number | null; out: string }>((done) => {
      const child = spawn(process.execPath, [scriptFile, join(dir, "own.db")], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.on("exit", (exitCode) => done({ code: exitCode, out: out.trim() }));
    });
    expect({ code, out }).toEqual({ code: 0, out: "closed" });
  });
});
