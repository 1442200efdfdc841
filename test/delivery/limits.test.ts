import type { ServerResponse } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink, type SinkBehaviour, waitUntil } from "../helpers/sink.js";

/**
 * Two endpoints that never answer (30 s timeout) and a healthy one, all on one sink: sends 100
 * messages and waits until the healthy endpoint has every one, well inside the hung endpoints'
 * timeout. Returns how many requests reached the hung ones. Closing the sink at the end drops the
 * hung connections, so Pigeon can stop without waiting out their timeout.
 */
async function deliverBesideHungEndpoints(
  pigeon: TestPigeon,
  appId: string,
  eventType: string,
): Promise<number> {
  let healthyArrivals = 0;
  const host = await Sink.start((req, res) => {
    if (req.url.startsWith("/hung")) return;
    healthyArrivals++;
    res.end("ok");
  });
  try {
    for (const path of ["/hung-a", "/hung-b"]) {
      const res = await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
        url: host.url(path),
        timeoutMs: 30_000,
      });
      expect(res.status).toBe(201);
    }
    await pigeon.svix.endpoint.create(appId, { url: host.url("/ok") });
    for (let i = 0; i < 100; i++) await pigeon.svix.message.create(appId, { eventType, payload: { i } });
    await waitUntil(async () => healthyArrivals === 100, 15_000, "100 requests at the healthy endpoint");
    return host.received.filter((r) => r.url.startsWith("/hung")).length;
  } finally {
    await host.close();
  }
}

describe("per-endpoint limits and isolation", () => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0)) await o.close();
  });

  async function setup(env: Record<string, string> = {}): Promise<{ pigeon: TestPigeon; appId: string }> {
    const pigeon = await startPigeon(env);
    open.push(pigeon);
    const appId = (await pigeon.svix.application.create({ name: "Limits" })).id;
    return { pigeon, appId };
  }

  async function sink(behaviour?: SinkBehaviour) {
    const s = await Sink.start(behaviour);
    open.push(s);
    return s;
  }

  it("never exceeds an endpoint's rate limit in any one-second window", async () => {
    const { pigeon, appId } = await setup();
    const target = await sink();
    await pigeon.svix.endpoint.create(appId, { url: target.url(), rateLimit: 20 });
    for (let i = 0; i < 60; i++)
      await pigeon.svix.message.create(appId, { eventType: "rate.test", payload: { i } });
    await target.waitFor(60, 20_000);
    const times = target.received.map((r) => r.receivedAt).sort((a, b) => a - b);
    let busiest = 0;
    for (let i = 0; i < times.length; i++) {
      let j = i;
      while (j < times.length && times[j]! - times[i]! < 1000) j++;
      busiest = Math.max(busiest, j - i);
    }
    expect(busiest).toBeLessThanOrEqual(20);
    // …and the limit is a rate, not a trickle: 60 messages take about 3 s, not much more.
    expect(times[times.length - 1]! - times[0]!).toBeLessThan(6000);
  });

  it("a send that starts late pushes the next one back, so starts never come closer than the spacing", async () => {
    const { pigeon, appId } = await setup({ PIGEON_ENDPOINT_CONCURRENCY: "8" });
    const target = await sink();
    const endpoint = await pigeon.svix.endpoint.create(appId, { url: target.url(), rateLimit: 20 });
    for (let i = 0; i < 30; i++)
      await pigeon.svix.message.create(appId, { eventType: "rate.late", payload: { i } });
    // A busy event loop: every 100 ms it is held for 40 ms, so send timers fire up to 40 ms late
    // (within the lateness a slot allows) while the next send's timer may be on time.
    const busy = setInterval(() => {
      const until = Date.now() + 40;
      while (Date.now() < until) {
        // hold the loop
      }
    }, 100);
    try {
      await target.waitFor(30, 20_000);
    } finally {
      clearInterval(busy);
    }
    const recorded = async () =>
      (await pigeon.engine.store.listAttemptsByEndpoint(appId, endpoint.id, { limit: 100 })).data;
    await waitUntil(async () => (await recorded()).length === 30, 10_000, "30 recorded attempts");
    const starts = (await recorded()).map((a) => a.createdAt).sort((a, b) => a - b);
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    // Spacing at 20/s is (1000 + 100) / 20 = 55 ms between starts, late or not.
    expect(Math.min(...gaps)).toBeGreaterThanOrEqual(55);
  });

  it("holds at most PIGEON_ENDPOINT_CONCURRENCY requests open to one endpoint", async () => {
    const { pigeon, appId } = await setup({ PIGEON_ENDPOINT_CONCURRENCY: "4" });
    let inFlight = 0;
    let peak = 0;
    const target = await sink((_req, res: ServerResponse) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end("ok");
      }, 100);
    });
    await pigeon.svix.endpoint.create(appId, { url: target.url() });
    for (let i = 0; i < 40; i++)
      await pigeon.svix.message.create(appId, { eventType: "cap.test", payload: { i } });
    await target.waitFor(40, 20_000);
    expect(peak).toBe(4);
  });

  it("a hung endpoint does not hold up its healthy neighbours", async () => {
    const { pigeon, appId } = await setup({ PIGEON_ENDPOINT_CONCURRENCY: "4" });
    const hung = await sink(() => {
      // never answers
    });
    const healthy = await sink();
    const res = await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
      url: hung.url(),
      timeoutMs: 15_000,
    });
    expect(res.status).toBe(201);
    await pigeon.svix.endpoint.create(appId, { url: healthy.url() });
    const started = Date.now();
    for (let i = 0; i < 100; i++)
      await pigeon.svix.message.create(appId, { eventType: "hol.test", payload: { i } });
    await healthy.waitFor(100, 10_000);
    // All 100 arrived while the hung endpoint still had its first requests open (15 s timeout).
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(hung.received.length).toBe(4);
    // Dropping the hung connections lets Pigeon stop without waiting out their timeout.
    await hung.close();
  });

  it("hung endpoints do not hold up a healthy neighbour on the same host", async () => {
    // Three endpoints on one origin: two that never answer hold their caps' worth of connections
    // (2 × 40), more than a fixed per-origin pool of 64 had, which left the healthy endpoint's
    // requests waiting behind them inside the HTTP client until the hung ones timed out.
    const { pigeon, appId } = await setup({ PIGEON_ENDPOINT_CONCURRENCY: "40" });
    // The old pool freed its connections only when the hung ones timed out (30 s).
    expect(await deliverBesideHungEndpoints(pigeon, appId, "hol.host")).toBe(80);
  });
});

describe("global concurrency cap", () => {
  it("shares PIGEON_CONCURRENCY among endpoints and starves none", async () => {
    const pigeon = await startPigeon({ PIGEON_CONCURRENCY: "3", PIGEON_ENDPOINT_CONCURRENCY: "3" });
    let inFlight = 0;
    let peak = 0;
    const slow: SinkBehaviour = (_req, res) => {
      inFlight++;
      peak = Math.max(peak, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end("ok");
      }, 30);
    };
    const sinks = await Promise.all([Sink.start(slow), Sink.start(slow), Sink.start(slow)]);
    try {
      const app = await pigeon.svix.application.create({ name: "Global" });
      for (const s of sinks) await pigeon.svix.endpoint.create(app.id, { url: s.url() });
      for (let i = 0; i < 30; i++)
        await pigeon.svix.message.create(app.id, { eventType: "g.t", payload: { i } });
      await Promise.all(sinks.map((s) => s.waitFor(30, 20_000)));
      expect(peak).toBeLessThanOrEqual(3);
      expect(peak).toBe(3);
    } finally {
      await pigeon.close();
      for (const s of sinks) await s.close();
    }
  });

  it("claims in batches while PIGEON_CONCURRENCY, not the endpoints, is the limit", async () => {
    // Endpoints far below their own caps behind a process cap of 64: every completion leaves its
    // endpoint wanting more, but the process has rows queued for its next free slots. Claiming
    // after each round trip took just what finished meanwhile (17–22 rows a claim here); a claim
    // now waits until fewer than half the cap's worth are queued, so it takes at least that much.
    const cap = 64;
    const pigeon = await startPigeon({
      PIGEON_CONCURRENCY: String(cap),
      PIGEON_ENDPOINT_CONCURRENCY: "1000",
    });
    const target = await Sink.start((_req, res) => setTimeout(() => res.end("ok"), 50));
    try {
      const appId = (await pigeon.svix.application.create({ name: "Batches" })).id;
      for (let e = 0; e < 4; e++) await pigeon.svix.endpoint.create(appId, { url: target.url(`/e${e}`) });
      // The backlog builds up unclaimed, then is let go at once.
      const store = pigeon.engine.store;
      const claim = store.claimDueDeliveries.bind(store);
      let released = false;
      const claimSizes: number[] = [];
      store.claimDueDeliveries = async (request) => {
        if (!released) return [];
        const claimed = await claim(request);
        if (claimed.length > 0) claimSizes.push(claimed.length);
        return claimed;
      };
      for (let i = 0; i < 400; i++)
        await pigeon.svix.message.create(appId, { eventType: "claim.batch", payload: { i } });
      released = true;
      pigeon.engine.dispatcher.wake();
      await target.waitFor(1600, 30_000);
      expect(claimSizes.reduce((a, b) => a + b, 0)).toBe(1600);
      // Every claim but the last takes more than half the cap.
      expect(Math.min(...claimSizes.slice(0, -1))).toBeGreaterThan(cap / 2);
    } finally {
      await pigeon.close();
      await target.close();
    }
  });

  it("rows queued behind hung endpoints do not hold back claims for a healthy one", async () => {
    // Two hung endpoints fill their caps (2 × 4 of the process's 12 slots) and queue more rows
    // behind them: 16 rows, more than half the process cap. Claims wait only for rows that are
    // waiting for a process slot; these wait for their endpoint, so the healthy one keeps flowing.
    const pigeon = await startPigeon({ PIGEON_CONCURRENCY: "12", PIGEON_ENDPOINT_CONCURRENCY: "4" });
    try {
      const appId = (await pigeon.svix.application.create({ name: "Hung" })).id;
      expect(await deliverBesideHungEndpoints(pigeon, appId, "hung.queue")).toBe(8);
    } finally {
      await pigeon.close();
    }
  });

  it("asks a claim for no more rows than its endpoints could take", async () => {
    // A shared store reads `limit` due rows in time order to find whom to serve (passing over
    // other workers' endpoints); asking for the process's whole room (2 × PIGEON_CONCURRENCY)
    // made every claim read hundreds of rows to take a few dozen.
    const pigeon = await startPigeon({ PIGEON_ENDPOINT_CONCURRENCY: "4" });
    const target = await Sink.start((_req, res) => setTimeout(() => res.end("ok"), 5));
    try {
      const appId = (await pigeon.svix.application.create({ name: "Limits" })).id;
      for (const path of ["/a", "/b"]) await pigeon.svix.endpoint.create(appId, { url: target.url(path) });
      const store = pigeon.engine.store;
      const claim = store.claimDueDeliveries.bind(store);
      const asked: { limit: number; endpointsHeld: number; holdLimit: number }[] = [];
      store.claimDueDeliveries = async (request) => {
        asked.push({
          limit: request.limit,
          endpointsHeld: Object.keys(request.heldByEndpoint).length,
          holdLimit: request.endpointHoldLimit ?? request.endpointConcurrency,
        });
        return claim(request);
      };
      for (let i = 0; i < 100; i++)
        await pigeon.svix.message.create(appId, { eventType: "claim.size", payload: { i } });
      await target.waitFor(200, 20_000);
      // A worker holding nothing asks for all it may hold (it cannot tell how much is due); once it
      // holds endpoints, for each of them up to its hold limit (12 here) plus one hold limit for
      // new ones.
      const holding = asked.filter((a) => a.endpointsHeld > 0);
      expect(holding.length).toBeGreaterThan(0);
      for (const a of holding) expect(a.limit).toBeLessThanOrEqual(a.holdLimit * (a.endpointsHeld + 1));
    } finally {
      await pigeon.close();
      await target.close();
    }
  });

  it("makes no claim for a refill that an earlier claim has already answered", async () => {
    // Refills wait a moment to share one claim. When another claim meanwhile refilled every
    // endpoint that asked, the waiting one had nothing to ask for but endpoints not held here;
    // with other workers sharing the endpoints those come back empty (115 of 542 claims in
    // bench/postgres.ts with four workers). Here the store plays a shared one: a peer is live (so
    // refills wait the shared delay) and each claim takes a few milliseconds, while sends finish
    // at scattered times. The backlog is released at once, nothing new is published after, and
    // the poll is out of reach: every claim answers a refill.
    const pigeon = await startPigeon({ PIGEON_ENDPOINT_CONCURRENCY: "8", PIGEON_POLL_INTERVAL: "60s" });
    const target = await Sink.start((_req, res) => setTimeout(() => res.end("ok"), 5 + Math.random() * 35));
    try {
      const appId = (await pigeon.svix.application.create({ name: "Refills" })).id;
      for (const path of ["/a", "/b", "/c", "/d"])
        await pigeon.svix.endpoint.create(appId, { url: target.url(path) });
      const store = pigeon.engine.store;
      const claim = store.claimDueDeliveries.bind(store);
      let released = false;
      let claims = 0;
      let answered = 0;
      store.livePeerCount = () => 1;
      store.claimDueDeliveries = async (request) => {
        if (!released) return [];
        claims++;
        const held = Object.entries(request.heldByEndpoint).filter(([, n]) => n > 0);
        // Every endpoint held here is left out as well stocked: none wanted a refill.
        if (held.length > 0 && held.every(([id]) => request.excludeEndpointIds.includes(id))) answered++;
        await new Promise((resolve) => setTimeout(resolve, 8));
        return claim(request);
      };
      for (let i = 0; i < 300; i++)
        await pigeon.svix.message.create(appId, { eventType: "claim.refill", payload: { i } });
      released = true;
      pigeon.engine.dispatcher.wake();
      await target.waitFor(1200, 30_000);
      expect(claims).toBeGreaterThan(10);
      expect(answered).toBe(0);
    } finally {
      await pigeon.close();
      await target.close();
    }
  });

  it("stops sending while twice PIGEON_CONCURRENCY deliveries are sent but unrecorded", async () => {
    // What a crash re-sends is what was sent and not yet recorded; that must stay bounded even
    // when recording is slow.
    const pigeon = await startPigeon({ PIGEON_CONCURRENCY: "4" });
    const target = await Sink.start();
    try {
      const appId = (await pigeon.svix.application.create({ name: "Records" })).id;
      await pigeon.svix.endpoint.create(appId, { url: target.url() });
      const store = pigeon.engine.store;
      const complete = store.completeDeliveries.bind(store);
      let release: () => void = () => undefined;
      const stalled = new Promise<void>((resolve) => {
        release = resolve;
      });
      store.completeDeliveries = async (...args) => {
        await stalled;
        return complete(...args);
      };
      for (let i = 0; i < 30; i++)
        await pigeon.svix.message.create(appId, { eventType: "record.slow", payload: { i } });
      await target.waitFor(8, 10_000);
      // Nothing is recorded: 4 in flight plus 4 waiting for their commit is all it may send.
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(target.received).toHaveLength(8);
      release();
      await target.waitFor(30, 20_000);
    } finally {
      await pigeon.close();
      await target.close();
    }
  });
});
