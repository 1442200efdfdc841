import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { newId } from "../../src/core/ids.js";
import { GroupCommit } from "../../src/inbound/group-commit.js";
import { type ConsumeContext, InboxProcessor } from "../../src/inbound/processor.js";
import { retryDelayMs } from "../../src/inbound/retry.js";
import { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import type { ClaimedItem, InboxItem, InsertOutcome, Source } from "../../src/inbound/types.js";
import { openSqlite } from "../../src/store/sqlite/database.js";
import { testItem } from "../helpers/inbox.js";
import { waitUntil } from "../helpers/sink.js";

const SOURCE: Source = {
  id: "src_p",
  uid: null,
  name: "p",
  provider: "none",
  secrets: [],
  options: { concurrency: 2 },
  createdAt: 0,
  updatedAt: 0,
};

/** An inbox that counts its claim queries. */
class ClaimCountingStore extends SqliteInboxStore {
  claims = 0;
  override async claimItems(...args: Parameters<SqliteInboxStore["claimItems"]>) {
    this.claims++;
    return super.claimItems(...args);
  }
}

/** The items an insert handed to the processor, as the intake adopts them. */
function takenFrom(outcomes: InsertOutcome[]): ClaimedItem[] {
  return outcomes.flatMap((o) => (o.status === "received" && o.claimed ? [o.claimed] : []));
}

describe("InboxProcessor", () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-proc-"));
    file = join(dir, "inbox.db");
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  function processor(
    store: SqliteInboxStore,
    clock: { now(): number },
    consume: (item: InboxItem, source: Source, ctx: ConsumeContext) => Promise<void>,
  ) {
    return new InboxProcessor(
      { store, clock, sources: async () => [SOURCE], consumableSourceIds: () => null, consume },
      { leaseMs: 60_000, pollIntervalMs: 20, globalConcurrency: 10 },
    );
  }

  it("re-processes what a dead worker held once its lease ends, and never what it finished", async () => {
    let now = Date.now();
    const clock = { now: () => now };
    const storeA = new SqliteInboxStore(openSqlite(file));
    await storeA.createSource(SOURCE);
    const ids = [newId("in", now), newId("in", now)];
    await storeA.insertItems(
      ids.map((id) => ({
        id,
        sourceId: SOURCE.id,
        eventId: id,
        eventType: null,
        eventTime: null,
        orderingKey: null,
        method: "POST",
        path: "/",
        query: "",
        headers: {},
        body: Buffer.from("{}"),
        contentType: null,
        bodyKind: "json" as const,
        receivedAt: now,
      })),
    );

    // Worker A finishes the first item and hangs on the second, then "dies" (is never stopped).
    const seenA: string[] = [];
    const a = processor(storeA, clock, async (item) => {
      seenA.push(item.id);
      if (item.id === ids[1]) await new Promise(() => undefined);
    });
    a.start();
    await waitUntil(
      async () => (await storeA.getItem(SOURCE.id, ids[0]!))?.status === "processed",
      5_000,
      "A to finish one",
    );
    expect(seenA.sort()).toEqual([...ids].sort());

    // Worker B on the same file: nothing to do until A's lease on the second item runs out.
    const storeB = new SqliteInboxStore(openSqlite(file));
    const seenB: { id: string; attempt: number }[] = [];
    const b = processor(storeB, clock, async (item, _s, ctx) => {
      seenB.push({ id: item.id, attempt: ctx.attempt });
    });
    b.start();
    await new Promise((r) => setTimeout(r, 100));
    expect(seenB).toEqual([]);
    now += 2 * 60_000 + 1;
    await waitUntil(() => seenB.length === 1, 5_000, "B to take over");
    expect(seenB).toEqual([{ id: ids[1], attempt: 1 }]);
    await waitUntil(
      async () => (await storeB.getItem(SOURCE.id, ids[1]!))?.status === "processed",
      5_000,
      "B to finish",
    );
    now += 10 * 60_000;
    b.wake();
    await new Promise((r) => setTimeout(r, 100));
    expect(seenB).toHaveLength(1);
    await b.stop();
    // A is "dead": stop its loop (its hung handler never returns) before closing its file.
    void a.stop();
    for (const store of [storeA, storeB]) {
      await store.close();
      store.db.close();
    }
  });

  it("gives back claimed items that never started when stopped", async () => {
    const store = new SqliteInboxStore(openSqlite(file));
    await store.createSource({ ...SOURCE, options: { concurrency: 5, ratePerSecond: 1 } });
    const now = Date.now();
    const ids = [0, 1, 2].map(() => newId("in", now));
    await store.insertItems(
      ids.map((id) => ({
        id,
        sourceId: SOURCE.id,
        eventId: null,
        eventType: null,
        eventTime: null,
        orderingKey: null,
        method: "POST",
        path: "/",
        query: "",
        headers: {},
        body: Buffer.from(""),
        contentType: null,
        bodyKind: "other" as const,
        receivedAt: now,
      })),
    );
    const seen: string[] = [];
    const p = new InboxProcessor(
      {
        store,
        clock: { now: () => Date.now() },
        sources: async () => [{ ...SOURCE, options: { concurrency: 5, ratePerSecond: 1 } }],
        consumableSourceIds: () => null,
        consume: async (item) => {
          seen.push(item.id);
        },
      },
      { leaseMs: 60_000, pollIntervalMs: 20, globalConcurrency: 10 },
    );
    p.start();
    await waitUntil(() => seen.length === 1, 5_000, "the first slot");
    await p.stop();
    // At one per second the others were still waiting for their slot: released, not lost.
    const statuses = await Promise.all(ids.map(async (id) => (await store.getItem(SOURCE.id, id))!.status));
    expect(statuses.filter((s) => s === "processed")).toHaveLength(1);
    expect(
      statuses.filter((s) => s === "received").length + statuses.filter((s) => s === "processing").length,
    ).toBe(2);
    expect(p.inFlight).toBe(0);
    await store.close();
    store.db.close();
  });
  it("hands fresh items over without a claim query while nothing waits in the store", async () => {
    // Counts the claim queries: each one is a transaction on the inbox's one writer.
    const store = new ClaimCountingStore(openSqlite(file));
    await store.createSource({ ...SOURCE, options: { concurrency: 4 } });
    const handled: string[] = [];
    const p = new InboxProcessor(
      {
        store,
        clock: { now: () => Date.now() },
        sources: async () => [{ ...SOURCE, options: { concurrency: 4 } }],
        consumableSourceIds: () => null,
        consume: async (item) => {
          handled.push(item.id);
        },
      },
      // A poll far away, so only completions could be what asks for a claim.
      { leaseMs: 60_000, pollIntervalMs: 60_000, globalConcurrency: 10 },
    );
    p.start();
    // The first claim looks for a backlog at start and finds none.
    await waitUntil(() => store.claims === 1 && p.handoff() !== undefined, 5_000, "the start-up claim");
    for (let i = 0; i < 20; i++) {
      // What the intake does: insert with the handoff, then start what the processor took.
      const outcomes = await store.insertItems([testItem(SOURCE.id, { id: newId("in") })], p.handoff());
      const taken = takenFrom(outcomes);
      expect(taken).toHaveLength(1);
      p.adopt(taken);
      await waitUntil(() => handled.length === i + 1, 5_000, `item ${i}`);
    }
    await waitUntil(() => p.inFlight === 0, 5_000, "the outcomes");
    expect(store.claims).toBe(1);
    await p.stop();
    await store.close();
    store.db.close();
  });
  it("leaves a turn's outcomes to the intake's insert when one is written in that turn", async () => {
    class CompleteCountingStore extends SqliteInboxStore {
      completes = 0;
      override async completeItems(...args: Parameters<SqliteInboxStore["completeItems"]>) {
        this.completes++;
        return super.completeItems(...args);
      }
    }
    const store = new CompleteCountingStore(openSqlite(file));
    await store.createSource(SOURCE);
    const handled: string[] = [];
    const p = processor(store, { now: () => Date.now() }, async (item) => {
      handled.push(item.id);
    });
    let intakeWrites = true;
    p.carryWith({ writesThisTurn: () => intakeWrites });
    p.start();
    await waitUntil(() => p.handoff() !== undefined, 5_000, "the start-up claim");

    const first = testItem(SOURCE.id, { id: newId("in") });
    p.adopt(takenFrom(await store.insertItems([first], p.handoff())));
    await waitUntil(() => handled.length === 1, 5_000, "the first item handled");
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    // Not committed alone: still held, still processing in the store.
    expect(store.completes).toBe(0);
    expect(p.inFlight).toBe(1);
    expect((await store.getItem(SOURCE.id, first.id))?.status).toBe("processing");

    // The intake's insert carries it: recorded in that commit and let go.
    const second = testItem(SOURCE.id, { id: newId("in") });
    await store.insertItems([second], undefined, p.carry());
    expect(p.carry()).toBeUndefined();
    expect(store.completes).toBe(0);
    expect(p.inFlight).toBe(0);
    expect((await store.getItem(SOURCE.id, first.id))?.status).toBe("processed");

    // No insert in the turn: the outcome commits alone, as before.
    intakeWrites = false;
    const third = testItem(SOURCE.id, { id: newId("in") });
    p.adopt(takenFrom(await store.insertItems([third], p.handoff())));
    await waitUntil(() => p.inFlight === 0, 5_000, "the third item recorded");
    expect(store.completes).toBe(1);
    expect((await store.getItem(SOURCE.id, third.id))?.status).toBe("processed");
    await p.stop();
    await store.close();
    store.db.close();
  });

  it("queues items taken beyond a full cap in memory and starts them as slots free, within the cap", async () => {
    const store = new ClaimCountingStore(openSqlite(file));
    const capped = { ...SOURCE, options: { concurrency: 2 } };
    await store.createSource(capped);
    let running = 0;
    let peak = 0;
    const handled: string[] = [];
    const p = new InboxProcessor(
      {
        store,
        clock: { now: () => Date.now() },
        sources: async () => [capped],
        consumableSourceIds: () => null,
        consume: async (item) => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((resolve) => setTimeout(resolve, 20));
          running--;
          handled.push(item.id);
        },
      },
      { leaseMs: 60_000, pollIntervalMs: 60_000, globalConcurrency: 10 },
    );
    p.start();
    await waitUntil(() => store.claims === 1 && p.handoff() !== undefined, 5_000, "the start-up claim");
    // Six at once against a cap of 2: two start, four wait in memory (up to 2 × cap may).
    const items = Array.from({ length: 6 }, () => testItem(SOURCE.id, { id: newId("in") }));
    const outcomes = await store.insertItems(items, p.handoff());
    const taken = takenFrom(outcomes);
    expect(taken).toHaveLength(6);
    p.adopt(taken);
    await waitUntil(() => handled.length === 6 && p.inFlight === 0, 5_000, "all six handled and recorded");
    expect(peak).toBe(2);
    expect(store.claims).toBe(1);
    // A seventh beyond cap and queue is left in the store, for the claim.
    const more = Array.from({ length: 7 }, () => testItem(SOURCE.id, { id: newId("in") }));
    const second = await store.insertItems(more, p.handoff());
    expect(takenFrom(second)).toHaveLength(6);
    await p.stop();
    const statuses = await Promise.all(more.map(async (i) => (await store.getItem(SOURCE.id, i.id))!.status));
    // Never adopted (as after a failed commit), so stop gave nothing back: the taken six stay
    // leased for a later claim, and the seventh was never taken.
    expect(statuses.filter((st) => st === "received")).toHaveLength(1);
    await store.close();
    store.db.close();
  });
});

describe("GroupCommit", () => {
  it("writes everything submitted in one turn in one call, in order", async () => {
    const calls: number[][] = [];
    const gc = new GroupCommit<number, string>(async (items) => {
      calls.push(items);
      return items.map((n) => `r${n}`);
    });
    expect(gc.writesThisTurn).toBe(false);
    const submitted = [1, 2, 3].map((n) => gc.submit(n));
    expect(gc.writesThisTurn).toBe(true);
    const results = await Promise.all(submitted);
    expect(gc.writesThisTurn).toBe(false);
    expect(results).toEqual(["r1", "r2", "r3"]);
    expect(calls).toEqual([[1, 2, 3]]);
  });

  it("overlaps writes up to its limit, then queues, and splits large backlogs", async () => {
    const calls: number[][] = [];
    const gates: (() => void)[] = [];
    const gc = new GroupCommit<number, number>(
      async (items) => {
        calls.push(items);
        await new Promise<void>((r) => gates.push(r));
        return items;
      },
      2,
      2,
    );
    const first = gc.submit(1);
    await new Promise((r) => setImmediate(r));
    const second = gc.submit(2);
    await new Promise((r) => setImmediate(r));
    // Two writes wait for the disk at once; the third batch queues behind them.
    const rest = [3, 4, 5].map((n) => gc.submit(n));
    await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [2]]);
    expect(gc.pending).toBe(3);
    // Both writes are out, so none starts in this turn however much is queued.
    expect(gc.writesThisTurn).toBe(false);
    gates.shift()!();
    await first;
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    expect(calls).toEqual([[1], [2], [3, 4]]);
    while (gates.length > 0 || calls.length < 4) {
      gates.shift()?.();
      await new Promise((r) => setImmediate(r));
    }
    expect(await Promise.all([second, ...rest])).toEqual([2, 3, 4, 5]);
    expect(calls).toEqual([[1], [2], [3, 4], [5]]);
  });

  it("fails every submitter of a failed write, and only those", async () => {
    let fail = true;
    const gc = new GroupCommit<number, number>(async (items) => {
      if (fail) {
        fail = false;
        throw new Error("disk full");
      }
      return items;
    });
    const failed = await Promise.allSettled([gc.submit(1), gc.submit(2)]);
    expect(failed.map((r) => r.status)).toEqual(["rejected", "rejected"]);
    expect(await gc.submit(3)).toBe(3);
  });
});

describe("retryDelayMs", () => {
  it("doubles from the base up to the cap, within ±20 %", () => {
    const settings = { retryBaseMs: 1000, retryMaxMs: 10_000 };
    expect([1, 2, 3, 4, 5, 10].map((a) => retryDelayMs(a, settings, () => 0.5))).toEqual([
      1000, 2000, 4000, 8000, 10_000, 10_000,
    ]);
    expect(retryDelayMs(1, settings, () => 0)).toBe(800);
    expect(retryDelayMs(1, settings, () => 1)).toBe(1200);
  });
});
