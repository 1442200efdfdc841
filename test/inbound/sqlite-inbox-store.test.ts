import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.js";
import type { InboxClaim } from "../../src/inbound/store/inbox-store.js";
import { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import type { NewInboxItem, Source } from "../../src/inbound/types.js";
import { openSqlite } from "../../src/store/sqlite/database.js";

const T0 = 1_800_000_000_000;

function source(id: string): Source {
  return {
    id,
    uid: null,
    name: id,
    provider: "none",
    secrets: [],
    options: {},
    createdAt: T0,
    updatedAt: T0,
  };
}

function item(sourceId: string, fields: Partial<NewInboxItem> = {}): NewInboxItem {
  return {
    id: newId("in", T0),
    sourceId,
    eventId: null,
    eventType: null,
    eventTime: null,
    orderingKey: null,
    method: "POST",
    path: "/in/x",
    query: "",
    headers: { "content-type": "application/json" },
    body: Buffer.from("{}"),
    contentType: "application/json",
    bodyKind: "json",
    receivedAt: T0,
    ...fields,
  };
}

function claim(fields: Partial<InboxClaim> = {}): InboxClaim {
  return {
    now: T0,
    limit: 100,
    leaseUntil: T0 + 60_000,
    sourceIds: null,
    excludeSourceIds: [],
    roomBySource: {},
    busyKeys: [],
    heldIds: [],
    ...fields,
  };
}

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

  it("stores the first copy of an event and later copies as duplicates of it, within and across batches", async () => {
    const first = item("src_a", { eventId: "evt_1" });
    const outcomes = await store.insertItems([
      first,
      item("src_a", { eventId: "evt_1" }),
      item("src_a", { eventId: "evt_2" }),
      item("src_b", { eventId: "evt_1" }),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["received", "duplicate", "received", "received"]);
    expect(outcomes[1]).toMatchObject({ duplicateOf: first.id });
    const later = await store.insertItems([item("src_a", { eventId: "evt_1" })]);
    expect(later[0]).toMatchObject({ status: "duplicate", duplicateOf: first.id });
    const dup = await store.getItem("src_a", later[0]!.id);
    expect(dup).toMatchObject({ status: "duplicate", duplicateOf: first.id, eventId: "evt_1" });
    // Duplicates are never claimed.
    expect((await store.claimItems(claim())).map((c) => c.item.eventId).sort()).toEqual([
      "evt_1",
      "evt_1",
      "evt_2",
    ]);
  });

  it("rejects only the items of a deleted source and commits the rest of the batch", async () => {
    await store.deleteSource("src_b");
    const outcomes = await store.insertItems([item("src_a"), item("src_b"), item("src_a")]);
    expect(outcomes.map((o) => o.status)).toEqual(["received", "rejected", "received"]);
    expect((await store.listItems("src_a", { limit: 10 })).data).toHaveLength(2);
  });

  it("leases claimed items: not claimable again until the lease ends, then due again", async () => {
    await store.insertItems([item("src_a"), item("src_a")]);
    const first = await store.claimItems(claim());
    expect(first).toHaveLength(2);
    expect(await store.claimItems(claim({ now: T0 + 59_999 }))).toHaveLength(0);
    // A worker still on one of them past its lease does not get it twice.
    const mine = await store.claimItems(claim({ now: T0 + 60_000, heldIds: [first[0]!.item.id] }));
    expect(mine.map((c) => c.item.id)).toEqual([first[1]!.item.id]);
    // The worker died: after its lease the items come due again.
    const again = await store.claimItems(claim({ now: T0 + 120_000, leaseUntil: T0 + 180_000 }));
    expect(again.map((c) => c.item.id).sort()).toEqual(first.map((c) => c.item.id).sort());
  });

  it("never hands out a processed item again", async () => {
    await store.insertItems([item("src_a")]);
    const [c] = await store.claimItems(claim());
    await store.completeItems(
      [{ id: c!.item.id, sourceId: "src_a", result: "processed", stale: false }],
      T0 + 10,
    );
    expect(await store.claimItems(claim({ now: T0 + 10 * 60_000 }))).toHaveLength(0);
    expect(await store.getItem("src_a", c!.item.id)).toMatchObject({
      status: "processed",
      attempts: 1,
      processedAt: T0 + 10,
    });
    // An outcome for an item no longer in processing (a late worker) changes nothing.
    await store.completeItems(
      [{ id: c!.item.id, sourceId: "src_a", result: "failed", error: "late" }],
      T0 + 20,
    );
    expect(await store.getItem("src_a", c!.item.id)).toMatchObject({ status: "processed", lastError: null });
  });

  it("schedules retries and fails for good", async () => {
    await store.insertItems([item("src_a"), item("src_a")]);
    const [a, b] = await store.claimItems(claim());
    await store.completeItems(
      [
        { id: a!.item.id, sourceId: "src_a", result: "retry", nextAttemptAt: T0 + 5000, error: "boom" },
        { id: b!.item.id, sourceId: "src_a", result: "failed", error: "bad" },
      ],
      T0,
    );
    expect(await store.claimItems(claim({ now: T0 + 4999 }))).toHaveLength(0);
    expect(await store.nextDueAt(null)).toBe(T0 + 5000);
    const retried = await store.claimItems(claim({ now: T0 + 5000 }));
    expect(retried.map((c) => c.item.id)).toEqual([a!.item.id]);
    expect(retried[0]!.item).toMatchObject({ attempts: 1, lastError: "boom" });
    expect(await store.getItem("src_a", b!.item.id)).toMatchObject({
      status: "failed",
      attempts: 1,
      lastError: "bad",
    });
    expect(await store.requeueItem("src_a", b!.item.id, T0 + 6000)).toBe(true);
    expect(await store.requeueItem("src_a", b!.item.id, T0 + 6000)).toBe(false);
  });

  it("takes one item per ordering key, skips busy keys, and respects per-source room", async () => {
    await store.insertItems([
      item("src_a", { orderingKey: "k1", receivedAt: T0 }),
      item("src_a", { orderingKey: "k1", receivedAt: T0 + 1 }),
      item("src_a", { orderingKey: "k2", receivedAt: T0 + 2 }),
      item("src_a", { orderingKey: "k3", receivedAt: T0 + 3 }),
      item("src_b", { receivedAt: T0 + 4 }),
      item("src_b", { receivedAt: T0 + 5 }),
    ]);
    const taken = await store.claimItems(
      claim({ now: T0 + 10, busyKeys: ["src_a\u0000k3"], roomBySource: { src_b: 1 } }),
    );
    expect(taken.map((c) => `${c.item.sourceId}:${c.item.orderingKey}`)).toEqual([
      "src_a:k1",
      "src_a:k2",
      "src_b:null",
    ]);
    expect(taken[0]!.item.receivedAt).toBe(T0);
    const excluded = await store.claimItems(claim({ now: T0 + 10, excludeSourceIds: ["src_a"] }));
    expect(excluded.map((c) => c.item.sourceId)).toEqual(["src_b"]);
  });

  it("raises ordering marks, never lowers them, and reports them on claim", async () => {
    await store.insertItems([item("src_a", { orderingKey: "k", eventTime: 500 })]);
    const [c] = await store.claimItems(claim());
    expect(c!.newestProcessedTime).toBeNull();
    await store.completeItems(
      [
        {
          id: c!.item.id,
          sourceId: "src_a",
          result: "processed",
          stale: false,
          mark: { key: "k", eventTime: 500 },
        },
      ],
      T0,
    );
    await store.insertItems([item("src_a", { orderingKey: "k", eventTime: 400 })]);
    const [d] = await store.claimItems(claim({ now: T0 + 1 }));
    expect(d!.newestProcessedTime).toBe(500);
    await store.completeItems(
      [
        {
          id: d!.item.id,
          sourceId: "src_a",
          result: "processed",
          stale: true,
          mark: { key: "k", eventTime: 400 },
        },
      ],
      T0,
    );
    await store.insertItems([item("src_a", { orderingKey: "k", eventTime: 450 })]);
    const [e] = await store.claimItems(claim({ now: T0 + 2 }));
    expect(e!.newestProcessedTime).toBe(500);
  });

  it("counts per status and verification failures", async () => {
    await store.insertItems([
      item("src_a", { eventId: "x" }),
      item("src_a", { eventId: "x" }),
      item("src_a"),
    ]);
    await store.addVerifyFailures([
      { sourceId: "src_a", count: 3, lastAt: T0, lastCode: "invalid_signature" },
    ]);
    const stats = await store.sourceStats("src_a");
    expect(stats.counts).toMatchObject({ received: 2, duplicate: 1, processed: 0 });
    expect(stats).toMatchObject({
      verifyFailures: 3,
      lastVerifyFailureAt: T0,
      lastVerifyFailureCode: "invalid_signature",
    });
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
});
