import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { createSource, inbox, send } from "./helpers.js";

/** Sends `ids` with `parallel` requests in flight; resolves with the statuses in order. */
async function sendAll(p: TestPigeon, path: string, ids: string[], parallel: number, onAck?: () => void) {
  const statuses: number[] = new Array(ids.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < ids.length) {
        const i = next++;
        const res = await send(p, path, JSON.stringify({ id: ids[i], type: "load" }), {
          "content-type": "application/json",
        });
        statuses[i] = res.status;
        onAck?.();
      }
    }),
  );
  return statuses;
}

describe("throughput control", () => {
  let p: TestPigeon;
  beforeAll(async () => {
    p = await startPigeon();
  });
  afterAll(async () => {
    await p.close();
  });

  it("acknowledges everything while the handler is stuck, and processes it all afterwards", async () => {
    const s = await createSource(p, {
      name: "gated",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id", concurrency: 4 },
    });
    let open!: () => void;
    const gate = new Promise<void>((r) => {
      open = r;
    });
    let active = 0;
    let maxActive = 0;
    const done = new Set<string>();
    p.engine.inbound.on(
      "*",
      async (e) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await gate;
        active--;
        done.add(e.eventId!);
      },
      { source: s.id },
    );

    const ids = Array.from({ length: 60 }, (_, i) => `gated-${i}`);
    const statuses = await sendAll(p, s.ingestPath, ids, 12);
    expect(statuses.every((st) => st === 200)).toBe(true);
    // Every request was acknowledged although not one has been handled yet.
    expect(done.size).toBe(0);
    await waitUntil(() => active === 4, 5_000, "four handlers running");
    // Leased by the worker: the four running, plus up to two caps' worth it took at intake and
    // holds in memory to start next.
    const leased = (await inbox(p, s.id, "&status=processing")).length;
    expect(leased).toBeGreaterThanOrEqual(4);
    expect(leased).toBeLessThanOrEqual(4 + 2 * 4);

    open();
    await waitUntil(() => done.size === ids.length, 10_000, "everything handled");
    expect(maxActive).toBe(4);
    expect([...done].sort()).toEqual([...ids].sort());
  });

  it("with a 50 ms handler and a cap of 4: intake runs ahead, at most 4 at once, nothing dropped", async () => {
    const s = await createSource(p, {
      name: "slow",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id", concurrency: 4 },
    });
    let active = 0;
    let maxActive = 0;
    const handled: string[] = [];
    p.engine.inbound.on(
      "*",
      async (e) => {
        active++;
        maxActive = Math.max(maxActive, active);
        await new Promise((r) => setTimeout(r, 50));
        active--;
        handled.push(e.eventId!);
      },
      { source: s.id },
    );

    const ids = Array.from({ length: 200 }, (_, i) => `slow-${i}`);
    let handledAtLastAck = -1;
    const statuses = await sendAll(p, s.ingestPath, ids, 16, () => {
      handledAtLastAck = handled.length;
    });
    expect(statuses.every((st) => st === 200)).toBe(true);
    // 200 × 50 ms / 4 is at least 2.5 s of handling; the acknowledgements did not wait for it.
    expect(handledAtLastAck).toBeLessThan(ids.length / 2);

    await waitUntil(() => handled.length >= ids.length, 20_000, "everything handled");
    expect(maxActive).toBe(4);
    expect(new Set(handled).size).toBe(ids.length);
    expect(handled.length).toBe(ids.length);
    // A handler's return is recorded a moment later, with its batch of outcomes.
    await waitUntil(
      async () => (await inbox(p, s.id, "&status=processed")).length === ids.length,
      10_000,
      "every item recorded as processed",
    );
  });

  it("spaces hand-offs to a rate cap", async () => {
    const s = await createSource(p, {
      name: "rated",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id", concurrency: 10, ratePerSecond: 20 },
    });
    const starts: number[] = [];
    p.engine.inbound.on(
      "*",
      () => {
        starts.push(performance.now());
      },
      { source: s.id },
    );
    await sendAll(
      p,
      s.ingestPath,
      Array.from({ length: 12 }, (_, i) => `rated-${i}`),
      12,
    );
    await waitUntil(() => starts.length === 12, 10_000, "every item");
    starts.sort((a, b) => a - b);
    // 20 per second is one slot per 50 ms. Timers never fire early, so eleven gaps span at
    // least 11 slots whatever the scheduling jitter of single hand-offs.
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(11 * 50 * 0.95);
  });
});
