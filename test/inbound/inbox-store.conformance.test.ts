import { afterEach, beforeEach, expect, it } from "vitest";
import type { InboxClaim, InboxStore } from "../../src/inbound/store/inbox-store.js";
import { inboxStoreFor, isUnsupportedInboxStore } from "../../src/inbound/store/open-inbox-store.js";
import type { NewInboxItem } from "../../src/inbound/types.js";
import { describeBackend, describeBackends, openTestStore, type TestStore } from "../helpers/backends.js";
import { testItem as item, testSource as source, T0 } from "../helpers/inbox.js";
import { waitUntil } from "../helpers/sink.js";

/**
 * The InboxStore contract, run against the inbox of each engine backend (the one `engine.inbound`
 * uses: on the engine's own SQLite connection or PostgreSQL pool). Backend-specific behaviour
 * (SQLite checkpoints, cross-process SQLite writers) is in sqlite-inbox-store.test.ts.
 */

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

describeBackends("InboxStore conformance", (backend) => {
  let t: TestStore;
  let store: InboxStore;
  beforeEach(async () => {
    t = await openTestStore(backend);
    store = inboxStoreFor(t.store);
    expect(isUnsupportedInboxStore(store)).toBe(false);
    expect(store.kind).toBe(backend);
    await store.createSource(source("src_a"));
    await store.createSource(source("src_b"));
  });
  afterEach(async () => {
    await store.close();
    await t.cleanup();
  });

  it("reads a source by id before uid when one source's uid is another's id", async () => {
    // The uid holder sorts first by id, so a lookup that takes whichever row it meets first finds it.
    await store.createSource(source("src_1", { uid: "src_2" }));
    await store.createSource(source("src_2"));
    expect((await store.getSource("src_2"))?.id).toBe("src_2");
    expect((await store.getSource("src_1"))?.id).toBe("src_1");
  });

  it("creates, reads, pages, updates and deletes sources", async () => {
    const created = await store.createSource(
      source("src_c", {
        uid: "github-main",
        provider: "github",
        secrets: ["s1", "s2"],
        options: { forward: { appId: "app_1" }, concurrency: 3, eventType: { header: "x-t" } },
      }),
    );
    expect(await store.getSource("src_c")).toEqual(created);
    expect(await store.getSource("github-main")).toEqual(created);
    expect(await store.getSource("nope")).toBeUndefined();
    await expect(store.createSource(source("src_d", { uid: "github-main" }))).rejects.toMatchObject({
      status: 409,
    });

    const first = await store.listSources({ limit: 2 });
    expect(first.data.map((s) => s.id)).toEqual(["src_a", "src_b"]);
    expect(first.done).toBe(false);
    const second = await store.listSources({ limit: 2, iterator: first.iterator ?? undefined });
    expect(second.data.map((s) => s.id)).toEqual(["src_c"]);
    expect(second.done).toBe(true);
    expect((await store.allSources()).map((s) => s.id)).toEqual(["src_a", "src_b", "src_c"]);

    const updated = { ...created, name: "Main", secrets: ["s3"], updatedAt: T0 + 1 };
    await store.updateSource(updated);
    expect(await store.getSource("src_c")).toEqual(updated);
    await expect(store.updateSource({ ...updated, id: "src_a", uid: "github-main" })).rejects.toMatchObject({
      status: 409,
    });

    await store.insertItems([item("src_c", { orderingKey: "k" })]);
    await store.deleteSource("src_c");
    expect(await store.getSource("src_c")).toBeUndefined();
    expect((await store.listItems("src_c", { limit: 10 })).data).toEqual([]);
  });

  it("round-trips an item exactly (binary body, headers, fields)", async () => {
    const body = Buffer.from([0, 1, 2, 255, 254, 0x7b]);
    const it1 = item("src_a", {
      eventId: "e1",
      eventType: "user.created",
      eventTime: T0 - 5,
      orderingKey: "cust_1",
      method: "PUT",
      path: "/in/x/y?z=1",
      query: "z=1",
      headers: { "x-b": "2", "x-a": "1" },
      body,
      contentType: "application/octet-stream",
      bodyKind: "other",
    });
    await store.insertItems([it1]);
    const stored = await store.getItem("src_a", it1.id);
    expect(stored).toEqual({
      ...it1,
      status: "received",
      duplicateOf: null,
      attempts: 0,
      nextAttemptAt: T0,
      lastError: null,
      stale: false,
      processedAt: null,
      updatedAt: T0,
    });
    expect(Object.keys(stored!.headers)).toEqual(["x-b", "x-a"]);
    expect(await store.getItem("src_b", it1.id)).toBeUndefined();
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
    expect(dup).toMatchObject({
      status: "duplicate",
      duplicateOf: first.id,
      eventId: "evt_1",
      nextAttemptAt: null,
    });
    // Duplicates are never claimed.
    expect((await store.claimItems(claim())).map((c) => c.item.eventId).sort()).toEqual([
      "evt_1",
      "evt_1",
      "evt_2",
    ]);
  });

  it("lets exactly one of two concurrent inserts of one event id be the first copy", async () => {
    const other = inboxStoreFor(await t.openAnother());
    try {
      for (let round = 0; round < 10; round++) {
        const eventId = `evt_race_${round}`;
        const a = item("src_a", { eventId });
        const b = item("src_a", { eventId });
        const [[ra], [rb]] = await Promise.all([store.insertItems([a]), other.insertItems([b])]);
        const statuses = [ra!.status, rb!.status].sort();
        expect(statuses).toEqual(["duplicate", "received"]);
        const winner = ra!.status === "received" ? a : b;
        const loser = ra!.status === "received" ? rb : ra;
        expect(loser).toMatchObject({ status: "duplicate", duplicateOf: winner.id });
      }
    } finally {
      await other.close();
    }
  });

  it("de-duplicates concurrent batches carrying the same events in different orders", async () => {
    const other = inboxStoreFor(await t.openAnother());
    try {
      const ids = Array.from({ length: 50 }, (_, i) => `evt_${i}`);
      const batch = (order: string[]) => order.map((eventId) => item("src_a", { eventId }));
      const results = await Promise.all([
        store.insertItems(batch(ids)),
        other.insertItems(batch([...ids].reverse())),
        store.insertItems(batch([...ids].sort(() => Math.random() - 0.5))),
        other.insertItems(batch([...ids].sort(() => Math.random() - 0.5))),
      ]);
      const received = results.flat().filter((o) => o.status === "received").length;
      expect(received).toBe(50);
      const stats = await store.sourceStats("src_a");
      expect(stats.counts).toMatchObject({ received: 50, duplicate: 150 });
    } finally {
      await other.close();
    }
  });

  it("rejects only the items of a deleted source and commits the rest of the batch", async () => {
    await store.deleteSource("src_b");
    const outcomes = await store.insertItems([
      item("src_a"),
      item("src_b"),
      item("src_b", { eventId: "e" }),
      item("src_a"),
    ]);
    expect(outcomes.map((o) => o.status)).toEqual(["received", "rejected", "rejected", "received"]);
    expect((await store.listItems("src_a", { limit: 10 })).data).toHaveLength(2);
  });

  it("hands new items straight to the processor when it takes them (handoff)", async () => {
    await store.insertItems([item("src_a", { eventId: "seen" })]);
    const taken: string[] = [];
    const untaken: string[] = [];
    const handoff = {
      leaseUntil: T0 + 30_000,
      take: (i: NewInboxItem) => {
        taken.push(i.id);
        return true;
      },
      untake: (id: string) => untaken.push(id),
    };
    const fresh = item("src_a", { eventId: "new", orderingKey: "k" });
    const dup = item("src_a", { eventId: "seen" });
    const outcomes = await store.insertItems([fresh, dup], handoff);
    expect(outcomes[0]).toMatchObject({ status: "received", claimed: { newestProcessedTime: null } });
    if (outcomes[0]!.status === "received")
      expect(outcomes[0]!.claimed?.item).toMatchObject({
        id: fresh.id,
        status: "processing",
        nextAttemptAt: T0 + 30_000,
      });
    expect(outcomes[1]).toMatchObject({ status: "duplicate" });
    expect(untaken).toEqual([dup.id]);
    expect(await store.getItem("src_a", fresh.id)).toMatchObject({
      status: "processing",
      nextAttemptAt: T0 + 30_000,
    });
    // Leased, so not claimable before the lease ends.
    expect(await store.claimItems(claim({ now: T0 + 1 }))).toHaveLength(1);
  });

  it("offers a batch's items to the handoff in arrival order, not event-id order", async () => {
    // Like the processor: one item per ordering key.
    const keys = new Set<string>();
    const handoff = {
      leaseUntil: T0 + 30_000,
      take: (i: NewInboxItem) => {
        if (keys.has(i.orderingKey!)) return false;
        keys.add(i.orderingKey!);
        return true;
      },
      untake: () => undefined,
    };
    const first = item("src_a", { eventId: "evt_zzz", orderingKey: "k", eventTime: 1000 });
    const second = item("src_a", { eventId: "evt_aaa", orderingKey: "k", eventTime: 2000 });
    // Before, on PostgreSQL, `second` was taken (its event id sorts first) and `first` then stale.
    const outcomes = await store.insertItems([first, second], handoff);
    expect(outcomes.map((o) => (o.status === "received" && o.claimed ? o.claimed.item.id : null))).toEqual([
      first.id,
      null,
    ]);
  });

  it("records outcomes carried by an insert, and says when they are committed", async () => {
    const handoff = { leaseUntil: T0 + 30_000, take: () => true, untake: () => undefined };
    const [done, again] = [item("src_a", { orderingKey: "k", eventTime: 5 }), item("src_a")];
    await store.insertItems([done!, again!], handoff);
    const settled: string[] = [];
    const fresh = item("src_a");
    const outcomes = await store.insertItems([fresh], undefined, {
      outcomes: [
        {
          id: done!.id,
          sourceId: "src_a",
          result: "processed",
          stale: false,
          mark: { key: "k", eventTime: 5 },
        },
        { id: again!.id, sourceId: "src_a", result: "retry", nextAttemptAt: T0 + 9_000, error: "busy" },
      ],
      now: T0 + 1,
      recorded: () => settled.push("recorded"),
      failed: () => settled.push("failed"),
    });
    expect(outcomes).toEqual([{ id: fresh.id, status: "received" }]);
    await waitUntil(() => settled.length > 0, 10_000, "the carried outcomes' report");
    expect(settled).toEqual(["recorded"]);
    expect(await store.getItem("src_a", done!.id)).toMatchObject({ status: "processed", attempts: 1 });
    expect(await store.getItem("src_a", again!.id)).toMatchObject({
      status: "received",
      nextAttemptAt: T0 + 9_000,
      lastError: "busy",
    });
    // The mark was recorded too: a handed-off item of that key is told its newest time.
    const next = await store.insertItems([item("src_a", { orderingKey: "k", eventTime: 4 })], handoff);
    expect(next[0]).toMatchObject({ status: "received", claimed: { newestProcessedTime: 5 } });
  });

  // SQLite records carried outcomes in the insert's transaction; PostgreSQL by their own statements.
  it.skipIf(backend !== "sqlite")(
    "keeps the insert when carried outcomes cannot be recorded, and says they failed",
    async () => {
      const handoff = { leaseUntil: T0 + 30_000, take: () => true, untake: () => undefined };
      const held = item("src_a");
      await store.insertItems([held], handoff);
      const settled: unknown[] = [];
      const fresh = item("src_a");
      // A mark without a key breaks the table's NOT NULL. (A mark of a deleted source no longer
      // fails: it is skipped, see "…ordering mark of a source deleted mid-flight…".)
      const outcomes = await store.insertItems([fresh], undefined, {
        outcomes: [
          { id: held.id, sourceId: "src_a", result: "processed", stale: false },
          {
            id: held.id,
            sourceId: "src_a",
            result: "processed",
            stale: false,
            mark: { key: null as unknown as string, eventTime: 1 },
          },
        ],
        now: T0 + 1,
        recorded: () => settled.push("recorded"),
        failed: (error) => settled.push(error),
      });
      expect(outcomes).toEqual([{ id: fresh.id, status: "received" }]);
      await waitUntil(() => settled.length > 0, 10_000, "the carried outcomes' report");
      expect(settled).toHaveLength(1);
      expect(settled[0]).toBeInstanceOf(Error);
      expect(await store.getItem("src_a", fresh.id)).toMatchObject({ status: "received" });
      // In the insert's transaction, under a savepoint: none of the batch's outcomes stuck.
      expect(await store.getItem("src_a", held.id)).toMatchObject({ status: "processing" });
    },
  );

  it("reports each handed-off item's ordering mark, per source and key, in the insert itself", async () => {
    for (const [source, key, eventTime] of [
      ["src_a", "k", 500],
      ["src_b", "k", 700],
    ] as const) {
      await store.insertItems([item(source, { orderingKey: key, eventTime })]);
      const [c] = await store.claimItems(claim({ sourceIds: [source] }));
      await store.completeItems(
        [{ id: c!.item.id, sourceId: source, result: "processed", stale: false, mark: { key, eventTime } }],
        T0,
      );
    }
    const handoff = { leaseUntil: T0 + 30_000, take: () => true, untake: () => undefined };
    const batch = [
      item("src_a", { orderingKey: "k", eventTime: 400 }),
      item("src_b", { orderingKey: "k", eventTime: 800 }),
      item("src_a", { orderingKey: "other", eventTime: 1 }),
      item("src_a"),
    ];
    const outcomes = await store.insertItems(batch, handoff);
    expect(
      outcomes.map((o) => (o.status === "received" ? o.claimed?.newestProcessedTime : o.status)),
    ).toEqual([500, 700, null, null]);
  });

  it("leases claimed items: not claimable again until the lease ends, then due again", async () => {
    await store.insertItems([item("src_a"), item("src_a")]);
    const first = await store.claimItems(claim());
    expect(first).toHaveLength(2);
    expect(first.every((c) => c.item.status === "processing" && c.item.nextAttemptAt === T0 + 60_000)).toBe(
      true,
    );
    expect(await store.claimItems(claim({ now: T0 + 59_999 }))).toHaveLength(0);
    // A worker still on one of them past its lease does not get it twice.
    const mine = await store.claimItems(claim({ now: T0 + 60_000, heldIds: [first[0]!.item.id] }));
    expect(mine.map((c) => c.item.id)).toEqual([first[1]!.item.id]);
    // The worker died: after its lease the items come due again.
    const again = await store.claimItems(claim({ now: T0 + 120_000, leaseUntil: T0 + 180_000 }));
    expect(again.map((c) => c.item.id).sort()).toEqual(first.map((c) => c.item.id).sort());
  });

  it("gives back released items at once", async () => {
    await store.insertItems([item("src_a")]);
    const [c] = await store.claimItems(claim());
    expect(await store.nextDueAt(null)).toBe(T0 + 60_000);
    await store.releaseItems([c!.item.id], T0 + 5);
    expect(await store.getItem("src_a", c!.item.id)).toMatchObject({
      status: "received",
      nextAttemptAt: T0 + 5,
    });
    expect(await store.claimItems(claim({ now: T0 + 5 }))).toHaveLength(1);
  });

  it("hands each item to one of two workers claiming at once", async () => {
    const other = inboxStoreFor(await t.openAnother());
    try {
      await store.insertItems(Array.from({ length: 40 }, () => item("src_a")));
      const [x, y] = await Promise.all([
        store.claimItems(claim({ limit: 30 })),
        other.claimItems(claim({ limit: 30 })),
      ]);
      const ids = [...x, ...y].map((c) => c.item.id);
      expect(new Set(ids).size).toBe(ids.length);
      const z = await store.claimItems(claim({ limit: 100 }));
      expect(ids.length + z.length).toBe(40);
    } finally {
      await other.close();
    }
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
      nextAttemptAt: null,
    });
    // An outcome for an item no longer in processing (a late worker) changes nothing.
    await store.completeItems(
      [{ id: c!.item.id, sourceId: "src_a", result: "failed", error: "late" }],
      T0 + 20,
    );
    expect(await store.getItem("src_a", c!.item.id)).toMatchObject({ status: "processed", lastError: null });
    expect(await store.nextDueAt(null)).toBeUndefined();
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
    expect(await store.nextDueAt(["src_a"])).toBe(T0 + 5000);
    expect(await store.nextDueAt(["src_b"])).toBeUndefined();
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
    expect(await store.getItem("src_a", b!.item.id)).toMatchObject({
      status: "received",
      attempts: 0,
      lastError: null,
      nextAttemptAt: T0 + 6000,
    });
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
    const only = await store.claimItems(
      claim({ now: T0 + 10, sourceIds: ["src_a"], busyKeys: ["src_a\u0000k1", "src_a\u0000k2"] }),
    );
    expect(only.map((c) => `${c.item.sourceId}:${c.item.orderingKey}`)).toEqual(["src_a:k3"]);
  });

  it("takes a key's items in arrival order after a worker died holding the older one", async () => {
    // A worker took k1 at intake (leased until T0 + 1000) and died; k2 of the same key came after.
    const k1 = item("src_a", { orderingKey: "k", eventTime: 1000, receivedAt: T0 });
    await store.insertItems([k1], { leaseUntil: T0 + 1000, take: () => true, untake: () => undefined });
    const k2 = item("src_a", { orderingKey: "k", eventTime: 2000, receivedAt: T0 + 1 });
    await store.insertItems([k2]);
    // Before: SQLite took k2 at once (the dead worker's lease was nobody's busy key), and both
    // backends took k2 first at the lease end (due at its receipt, k1 at its lease end); k1 was
    // then stale behind it, never handled.
    expect(await store.claimItems(claim({ now: T0 + 5 }))).toEqual([]);
    const taken = await store.claimItems(claim({ now: T0 + 1001 }));
    expect(taken.map((c) => c.item.id)).toEqual([k1.id]);
  });

  it("looks past due items it may not take for ones it may, even with a small batch", async () => {
    // The oldest due items belong to a source with room for one, and to a busy key: a claim of
    // three must still reach the takeable items behind them.
    await store.insertItems([
      item("src_a", { receivedAt: T0 }),
      item("src_a", { receivedAt: T0 + 1 }),
      item("src_a", { orderingKey: "busy", receivedAt: T0 + 2 }),
      item("src_a", { receivedAt: T0 + 3 }),
      item("src_b", { receivedAt: T0 + 4 }),
      item("src_b", { receivedAt: T0 + 5 }),
    ]);
    const taken = await store.claimItems(
      claim({ now: T0 + 10, limit: 3, roomBySource: { src_a: 1 }, busyKeys: ["src_a\u0000busy"] }),
    );
    expect(taken.map((c) => `${c.item.sourceId}@${c.item.receivedAt - T0}`)).toEqual([
      "src_a@0",
      "src_b@4",
      "src_b@5",
    ]);
  });

  it("records a batch of mixed outcomes, each item as its own says, and leaves an item no longer in processing alone", async () => {
    await store.insertItems(Array.from({ length: 5 }, (_, i) => item("src_a", { receivedAt: T0 + i })));
    const [a, b, c, d, e] = (await store.claimItems(claim({ now: T0 + 10 }))).map((x) => x.item.id);
    // e's lease ran out and another worker finished it first: its record here must not count.
    await store.completeItems([{ id: e!, sourceId: "src_a", result: "failed", error: "boom" }], T0 + 1);
    await store.completeItems(
      [
        { id: a!, sourceId: "src_a", result: "processed", stale: false },
        { id: b!, sourceId: "src_a", result: "processed", stale: true },
        { id: c!, sourceId: "src_a", result: "retry", nextAttemptAt: T0 + 9000, error: "later" },
        { id: d!, sourceId: "src_a", result: "processed", stale: false },
        { id: e!, sourceId: "src_a", result: "processed", stale: false },
      ],
      T0 + 2,
    );
    expect(await store.getItem("src_a", a!)).toMatchObject({
      status: "processed",
      stale: false,
      attempts: 1,
      processedAt: T0 + 2,
    });
    expect(await store.getItem("src_a", b!)).toMatchObject({ status: "processed", stale: true, attempts: 1 });
    expect(await store.getItem("src_a", c!)).toMatchObject({
      status: "received",
      attempts: 1,
      nextAttemptAt: T0 + 9000,
    });
    expect(await store.getItem("src_a", d!)).toMatchObject({
      status: "processed",
      stale: false,
      attempts: 1,
    });
    expect(await store.getItem("src_a", e!)).toMatchObject({
      status: "failed",
      attempts: 1,
      lastError: "boom",
    });
  });

  it("records a batch holding the ordering mark of a source deleted mid-flight, without the mark", async () => {
    await store.insertItems([
      item("src_a", { orderingKey: "k", eventTime: 500, receivedAt: T0 }),
      item("src_b", { receivedAt: T0 + 1 }),
    ]);
    const [a, b] = (await store.claimItems(claim({ now: T0 + 10 }))).map((x) => x.item.id);
    await store.deleteSource("src_a");
    // Before, on SQLite, the mark's foreign key failed the whole batch: src_b's item stayed in
    // processing and ran again once its lease ended.
    await store.completeItems(
      [
        { id: a!, sourceId: "src_a", result: "processed", stale: false, mark: { key: "k", eventTime: 500 } },
        { id: b!, sourceId: "src_b", result: "processed", stale: false },
      ],
      T0 + 20,
    );
    expect(await store.getItem("src_b", b!)).toMatchObject({ status: "processed", attempts: 1 });
    expect(await store.getItem("src_a", a!)).toBeUndefined();
  });

  it("marks items stale, raises ordering marks, never lowers them, and reports them on claim", async () => {
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
    expect(await store.getItem("src_a", d!.item.id)).toMatchObject({ status: "processed", stale: true });
    await store.insertItems([item("src_a", { orderingKey: "k", eventTime: 450 })]);
    const [e] = await store.claimItems(claim({ now: T0 + 2 }));
    expect(e!.newestProcessedTime).toBe(500);
    await store.completeItems([{ id: e!.item.id, sourceId: "src_a", result: "stale" }], T0 + 3);
    expect(await store.getItem("src_a", e!.item.id)).toMatchObject({
      status: "stale",
      nextAttemptAt: null,
      processedAt: T0 + 3,
    });
    // Marks are per source and key.
    await store.insertItems([item("src_b", { orderingKey: "k", eventTime: 1 })]);
    const [f] = await store.claimItems(claim({ now: T0 + 4 }));
    expect(f!.newestProcessedTime).toBeNull();
    // A stale item can be queued again.
    expect(await store.requeueItem("src_a", e!.item.id, T0 + 5)).toBe(true);
  });

  it("counts per status and verification failures", async () => {
    await store.insertItems([
      item("src_a", { eventId: "x" }),
      item("src_a", { eventId: "x" }),
      item("src_a"),
    ]);
    expect((await store.sourceStats("src_a")).verifyFailures).toBe(0);
    await store.addVerifyFailures([
      { sourceId: "src_a", count: 3, lastAt: T0, lastCode: "invalid_signature" },
      { sourceId: "src_b", count: 1, lastAt: T0, lastCode: "missing_signature" },
    ]);
    await store.addVerifyFailures([
      { sourceId: "src_a", count: 2, lastAt: T0 + 1, lastCode: "timestamp_out_of_range" },
    ]);
    const stats = await store.sourceStats("src_a");
    expect(stats.counts).toEqual({
      received: 2,
      processing: 0,
      processed: 0,
      failed: 0,
      duplicate: 1,
      stale: 0,
    });
    expect(stats).toMatchObject({
      verifyFailures: 5,
      lastVerifyFailureAt: T0 + 1,
      lastVerifyFailureCode: "timestamp_out_of_range",
    });
    expect(await store.sourceStats("src_b")).toMatchObject({
      verifyFailures: 1,
      lastVerifyFailureCode: "missing_signature",
    });
  });

  it("lists items of every status together newest first, page by page", async () => {
    // Twelve items whose statuses interleave by id, so every page draws on several statuses.
    const items = Array.from({ length: 12 }, (_, i) =>
      item("src_a", { id: `in_${String(i).padStart(3, "0")}`, eventId: `e${i}`, receivedAt: T0 + i }),
    );
    await store.insertItems(items);
    await store.insertItems([
      item("src_a", { id: "in_100", eventId: "e3" }),
      item("src_b", { id: "in_050" }),
    ]);
    const claimed = await store.claimItems(claim({ now: T0 + 100, limit: 8, sourceIds: ["src_a"] }));
    const byIndex = (i: number) => claimed.find((c) => c.item.id === items[i]!.id)!.item.id;
    await store.completeItems(
      [
        { id: byIndex(0), sourceId: "src_a", result: "processed", stale: false },
        { id: byIndex(2), sourceId: "src_a", result: "processed", stale: true },
        { id: byIndex(3), sourceId: "src_a", result: "failed", error: "no" },
        { id: byIndex(5), sourceId: "src_a", result: "stale" },
        { id: byIndex(6), sourceId: "src_a", result: "retry", nextAttemptAt: T0 + 5_000, error: "later" },
      ],
      T0 + 1,
    );
    const statuses = new Set((await store.listItems("src_a", { limit: 100 })).data.map((i) => i.status));
    expect([...statuses].sort()).toEqual([
      "duplicate",
      "failed",
      "processed",
      "processing",
      "received",
      "stale",
    ]);

    const seen: string[] = [];
    let iterator: string | undefined;
    for (let page = 0; page < 20; page++) {
      const p = await store.listItems("src_a", { limit: 5, ...(iterator ? { iterator } : {}) });
      expect(p.data.length).toBeLessThanOrEqual(5);
      seen.push(...p.data.map((i) => i.id));
      if (p.done) break;
      iterator = p.iterator ?? undefined;
    }
    const expected = [...items.map((i) => i.id), "in_100"].sort().reverse();
    expect(seen).toEqual(expected);
  });

  it("lists a source's items newest first, paged, filtered by status", async () => {
    const items = Array.from({ length: 5 }, (_, i) =>
      item("src_a", { eventId: `e${i}`, receivedAt: T0 + i }),
    );
    await store.insertItems(items);
    await store.insertItems([item("src_a", { eventId: "e0" }), item("src_b")]);
    const p1 = await store.listItems("src_a", { limit: 4 });
    expect(p1.done).toBe(false);
    expect(p1.data).toHaveLength(4);
    const p2 = await store.listItems("src_a", { limit: 4, iterator: p1.iterator ?? undefined });
    expect(p2.done).toBe(true);
    const all = [...p1.data, ...p2.data].map((i) => i.id);
    expect(all).toEqual([...all].sort().reverse());
    expect(all).toHaveLength(6);
    const dups = await store.listItems("src_a", { limit: 10, status: "duplicate" });
    expect(dups.data.map((i) => i.eventId)).toEqual(["e0"]);
    const received = await store.listItems("src_a", { limit: 2, status: "received" });
    expect(received.data).toHaveLength(2);
    expect(received.done).toBe(false);
    const rest = await store.listItems("src_a", {
      limit: 10,
      status: "received",
      iterator: received.iterator ?? undefined,
    });
    expect(rest.data).toHaveLength(3);
    expect(rest.done).toBe(true);
  });
});

describeBackend("postgres", "PostgresInboxStore, PostgreSQL only", () => {
  let t: TestStore;
  let store: InboxStore;
  beforeEach(async () => {
    t = await openTestStore("postgres");
    store = inboxStoreFor(t.store);
    await store.createSource(source("src_a"));
  });
  afterEach(async () => {
    await store.close();
    await t.cleanup();
  });

  it("does not take an item whose ordering key another worker holds under a live lease", async () => {
    const other = inboxStoreFor(await t.openAnother());
    try {
      await store.insertItems([
        item("src_a", { orderingKey: "k", receivedAt: T0 }),
        item("src_a", { orderingKey: "k", receivedAt: T0 + 1 }),
        item("src_a", { orderingKey: "j", receivedAt: T0 + 2 }),
      ]);
      const [mine] = await store.claimItems(claim({ now: T0 + 5, limit: 1 }));
      expect(mine!.item.orderingKey).toBe("k");
      // The other worker knows nothing of this one's busy keys; the lease in the table tells it.
      const theirs = await other.claimItems(claim({ now: T0 + 5 }));
      expect(theirs.map((c) => c.item.orderingKey)).toEqual(["j"]);
      await store.completeItems(
        [{ id: mine!.item.id, sourceId: "src_a", result: "processed", stale: false }],
        T0 + 6,
      );
      const next = await other.claimItems(claim({ now: T0 + 6 }));
      expect(next.map((c) => c.item.orderingKey)).toEqual(["k"]);
    } finally {
      await other.close();
    }
  });

  it("an outcome PostgreSQL refuses costs only its own item's record, kept without the refused value", async () => {
    await store.insertItems([item("src_a"), item("src_a"), item("src_a")]);
    const [a, b, c] = (await store.claimItems(claim())).map((x) => x.item.id);
    // NUL in text is what PostgreSQL refuses; the processor never sends it, a store must cope anyway.
    await store.completeItems(
      [
        { id: a!, sourceId: "src_a", result: "processed", stale: false },
        { id: b!, sourceId: "src_a", result: "retry", nextAttemptAt: T0 + 5000, error: "bad\u0000byte" },
        {
          id: c!,
          sourceId: "src_a",
          result: "processed",
          stale: false,
          mark: { key: "k\u0000", eventTime: T0 },
        },
      ],
      T0 + 1,
    );
    expect(await store.getItem("src_a", a!)).toMatchObject({ status: "processed", attempts: 1 });
    const retried = await store.getItem("src_a", b!);
    expect(retried).toMatchObject({ status: "received", attempts: 1, nextAttemptAt: T0 + 5000 });
    expect(retried!.lastError).toMatch(/^The handler's error could not be stored \(PostgreSQL: /);
    expect(await store.getItem("src_a", c!)).toMatchObject({ status: "processed", attempts: 1 });
  });
});
