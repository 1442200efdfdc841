import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { RawRequest } from "../../src/inbound/intake.js";
import type { InboundSettings } from "../../src/inbound/service.js";
import { InboundService, type InboundService as Service } from "../../src/inbound/service.js";
import { openSqliteInbox } from "../../src/inbound/store/open-inbox-store.js";
import type { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import { waitUntil } from "../helpers/sink.js";

/**
 * The processor must always come back to items waiting in the store (after a wake that found the
 * global cap full, after a failed claim, when a key frees while a claim runs), and never lose
 * track of items it took (an insert whose fsync failed after its commit).
 */

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let n = 0;
function raw(body: Record<string, unknown>, headers: Record<string, string> = {}): RawRequest {
  return {
    method: "POST",
    target: "/in/x",
    headers: { "content-type": "application/json", host: "localhost", ...headers },
    body: Buffer.from(JSON.stringify({ n: ++n, ...body })),
  };
}

describe("InboxProcessor recovery", () => {
  let dir: string;
  let inbox: SqliteInboxStore;
  let svc: Service | undefined;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-recovery-"));
    inbox = openSqliteInbox(join(dir, "inbox.db"));
  });
  afterEach(async () => {
    if (svc) await svc.stop();
    else await inbox.close();
    svc = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  function service(settings: Partial<InboundSettings>): Service {
    svc = new InboundService(
      { inbox, clock: { now: () => Date.now() } },
      { maxBodyBytes: 1e6, leaseMs: 60_000, pollIntervalMs: 100, globalConcurrency: 8, ...settings },
    );
    return svc;
  }

  async function statuses(sourceId: string): Promise<Record<string, string>> {
    const items = (await inbox.listItems(sourceId, { limit: 100 })).data;
    return Object.fromEntries(items.map((i) => [JSON.parse(i.body.toString()).tag, i.status]));
  }

  it("keeps items that arrive just after the last handler is unsubscribed for the next handler", async () => {
    const s = service({});
    const src = await s.sources.create({ name: "s", provider: "none", secrets: [], options: {} });
    const first: string[] = [];
    const off = s.on("*", async (e) => {
      first.push((e.json() as { tag: string }).tag);
    });
    await s.start();
    await sleep(150);
    off();
    await s.intake.receive(src, raw({ tag: "right-after-off" }));
    await sleep(300);
    expect(await statuses(src.id)).toEqual({ "right-after-off": "received" });
    const second: string[] = [];
    s.on("*", async (e) => {
      second.push((e.json() as { tag: string }).tag);
    });
    await waitUntil(async () => second.length === 1, 5_000, "the next handler to see the item");
    expect(first).toEqual([]);
    expect(second).toEqual(["right-after-off"]);
    expect(await statuses(src.id)).toEqual({ "right-after-off": "processed" });
  });

  it("runs a retry whose timer fired while the global cap was full", async () => {
    const s = service({ globalConcurrency: 1 });
    const src = await s.sources.create({
      name: "s",
      provider: "none",
      secrets: [],
      options: { retryBaseMs: 100 },
    });
    let failed = false;
    const seen: string[] = [];
    s.on("*", async (e) => {
      const tag = (e.json() as { tag: string }).tag;
      seen.push(tag);
      if (tag === "A" && !failed) {
        failed = true;
        throw new Error("A fails once");
      }
      // Holds the only slot past A's retry time.
      if (tag === "B") await sleep(500);
    });
    await s.start();
    await sleep(50);
    expect((await s.intake.receive(src, raw({ tag: "A" }))).status).toBe(200);
    await waitUntil(() => failed, 5_000, "A to fail once");
    // The retry is committed and the claim after it has set A's timer (due 80-120 ms after).
    await sleep(40);
    expect((await s.intake.receive(src, raw({ tag: "B" }))).status).toBe(200);
    await waitUntil(async () => (await statuses(src.id)).B === "processed", 5_000, "B");
    // Before: A's wake found the cap full, armed nothing, and A stayed `received` for ever.
    await waitUntil(async () => (await statuses(src.id)).A === "processed", 2_000, "A's retry");
    expect(seen.sort()).toEqual(["A", "A", "B"]);
  });

  for (const failing of ["claimItems", "sources"] as const) {
    it(`claims again at the next poll after ${failing === "sources" ? "reading the sources" : "a claim query"} failed`, async () => {
      const s = service({ pollIntervalMs: 50 });
      const src = await s.sources.create({ name: "s", provider: "none", secrets: [], options: {} });
      const seen: string[] = [];
      s.on("*", async (e) => {
        seen.push((e.json() as { tag: string }).tag);
      });
      // Stored while nothing processes, as after a restart.
      await s.intake.receive(src, raw({ tag: "old-1" }));
      await s.intake.receive(src, raw({ tag: "old-2" }));
      let failures = 1;
      const busy = () => Object.assign(new Error("database is locked"), { code: "SQLITE_BUSY" });
      if (failing === "claimItems") {
        const real = inbox.claimItems.bind(inbox);
        inbox.claimItems = async (c) => {
          if (failures-- > 0) throw busy();
          return real(c);
        };
      } else {
        const real = s.sources.all.bind(s.sources);
        s.sources.all = async () => {
          if (failures-- > 0) throw busy();
          return real();
        };
      }
      const errors: unknown[] = [];
      const log = console.error;
      console.error = (...args: unknown[]) => errors.push(args);
      try {
        await s.start();
        // Before: nothing claimed again, and the old items stayed `received` for ever.
        await waitUntil(() => seen.length === 2, 2_000, "the stored items to be handled");
      } finally {
        console.error = log;
      }
      expect(errors).toHaveLength(1);
      expect(seen).toEqual(["old-1", "old-2"]);
      // New items are handed on as before, behind the old ones.
      await s.intake.receive(src, raw({ tag: "new-1" }));
      await waitUntil(() => seen.length === 3, 2_000, "the new item");
      expect(seen).toEqual(["old-1", "old-2", "new-1"]);
    });
  }

  it("moves an ordering key on as soon as its item is recorded, not one item per poll", async () => {
    const s = service({ pollIntervalMs: 2000 });
    const src = await s.sources.create({
      name: "s",
      provider: "none",
      secrets: [],
      options: { orderingKey: { pointer: "/key" }, eventTime: { pointer: "/t" } },
    });
    const seen: string[] = [];
    s.on("*", async (e) => {
      seen.push((e.json() as { tag: string }).tag);
    });
    await s.start();
    await sleep(100);
    const started = Date.now();
    await Promise.all(
      [1, 2, 3, 4, 5].map((i) => s.intake.receive(src, raw({ tag: `e${i}`, key: "k", t: i }))),
    );
    // Before: e2 came a poll interval (2 s) after e1, e3 one more, and so on.
    await waitUntil(() => seen.length === 5, 1_500, "all five events of the key");
    expect(Date.now() - started).toBeLessThan(1_500);
    expect(seen).toEqual(["e1", "e2", "e3", "e4", "e5"]);
    await waitUntil(
      async () => Object.values(await statuses(src.id)).every((st) => st === "processed"),
      2_000,
      "all processed",
    );
  });

  it("hands on what an insert took when the insert's fsync failed after its commit", async () => {
    const s = service({});
    const src = await s.sources.create({
      name: "s",
      provider: "none",
      secrets: [],
      options: { concurrency: 1, eventIdHeader: "x-id" },
    });
    const seen: string[] = [];
    s.on("*", async (e) => {
      seen.push((e.json() as { tag: string }).tag);
    });
    await s.start();
    await sleep(50);
    const walSync = (inbox as unknown as { walSync: { sync(): Promise<void> } }).walSync;
    const realSync = walSync.sync.bind(walSync);
    let failures = 1;
    walSync.sync = () =>
      failures-- > 0
        ? Promise.reject(Object.assign(new Error("EIO: i/o error, fsync"), { code: "EIO" }))
        : realSync();
    const log = console.error;
    console.error = () => undefined;
    let a: Awaited<ReturnType<Service["intake"]["receive"]>>;
    try {
      a = await s.intake.receive(src, raw({ tag: "A" }, { "x-id": "evt-A" }));
    } finally {
      console.error = log;
    }
    // Not known to be on disk: the sender must send it again.
    expect(a.status).toBe(503);
    const resent = await s.intake.receive(src, raw({ tag: "A again" }, { "x-id": "evt-A" }));
    expect(resent.headers["pigeon-inbox-status"]).toBe("duplicate");
    for (const tag of ["B", "C"]) {
      expect((await s.intake.receive(src, raw({ tag }, { "x-id": `evt-${tag}` }))).status).toBe(200);
    }
    // Before: A stayed held for ever, in its source's only slot, and nothing after it started.
    await waitUntil(() => seen.length === 3, 2_000, "A, B and C to be handled");
    expect(seen).toEqual(["A", "B", "C"]);
    await waitUntil(() => s.processor.inFlight === 0, 2_000, "nothing left in flight");
    expect(Object.values(await statuses(src.id)).sort()).toEqual([
      "duplicate",
      "processed",
      "processed",
      "processed",
    ]);
  });

  it("keeps a timed-out handler's slot, and its item's retry, until the handler is done", async () => {
    const s = service({ pollIntervalMs: 50 });
    const src = await s.sources.create({
      name: "s",
      provider: "none",
      secrets: [],
      options: { concurrency: 1, handlerTimeoutMs: 100, retryBaseMs: 10 },
    });
    let running = 0;
    let mostRunning = 0;
    const copies = new Map<string, number>();
    let mostCopies = 0;
    const seen: string[] = [];
    s.on("*", async (e) => {
      const tag = (e.json() as { tag: string }).tag;
      seen.push(`${tag}#${e.attempt}`);
      running++;
      mostRunning = Math.max(mostRunning, running);
      copies.set(tag, (copies.get(tag) ?? 0) + 1);
      mostCopies = Math.max(mostCopies, copies.get(tag)!);
      try {
        // The first attempt runs on well past its timeout.
        await sleep(e.attempt === 1 ? 300 : 20);
      } finally {
        running--;
        copies.set(tag, copies.get(tag)! - 1);
      }
    });
    await s.start();
    await sleep(50);
    await s.intake.receive(src, raw({ tag: "A" }));
    await s.intake.receive(src, raw({ tag: "B" }));
    await waitUntil(
      async () => Object.values(await statuses(src.id)).every((st) => st === "processed"),
      5_000,
      "both processed",
    );
    // Before: B started when A timed out, and A's retry while its first attempt still ran.
    expect({ mostRunning, mostCopies }).toEqual({ mostRunning: 1, mostCopies: 1 });
    expect(seen.sort()).toEqual(["A#1", "A#2", "B#1", "B#2"]);
    const items = (await inbox.listItems(src.id, { limit: 10 })).data;
    for (const i of items) expect(i).toMatchObject({ attempts: 2, lastError: null });
  });
});
