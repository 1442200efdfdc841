import { afterAll, beforeAll, expect, it } from "vitest";
import { describeBackend } from "../helpers/backends.js";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { waitUntil } from "../helpers/sink.js";
import {
  type ApiClient,
  ArrivalSinks,
  apiClient,
  createAppWithEndpoints,
  duplicatesOf,
  maxPerSecond,
  produce,
  ScaleDatabase,
  shortestSpan,
} from "./helpers.js";

const MESSAGES = 20_000;
const ENDPOINTS = 10;
const RATE = 50;
const WORKERS = 3;
const CONCURRENCY = 64;

/**
 * Scale-out on one PostgreSQL schema: one API process (`--role api`) takes 20,000 messages over
 * HTTP and three worker processes (`--role worker`) deliver them to 10 endpoints limited to 50
 * requests/s each, while one worker is SIGKILLed mid-run and restarted.
 *
 * Each message goes to one endpoint (endpoint i subscribes to channel `c{i}`, message n is sent on
 * `c{n % 10}`), so every endpoint gets 2,000 messages: at 50/s that is ~40 s of delivery (slots
 * are 22 ms apart, so ~44 s), which keeps the test within its time budget while the limit is
 * what paces every endpoint. Fanning every message out to all 10 endpoints would take 400 s.
 * The run lasts ~60 s on an otherwise idle 2-core machine; when other suites share the cores,
 * publishing (not the limit) sets the pace (130 s was seen on a busy day), hence the generous
 * timeouts: they bound a hang, not the speed.
 *
 * Asserted: every message reaches its endpoint (and no other); duplicates only from what the
 * killed worker had in flight (at most the rows it held: 2 × PIGEON_CONCURRENCY, as in the SQLite
 * crash test); one webhook-id per message; and at every endpoint no sliding one-second window of
 * arrivals (stamped by the sink when each request arrives, in a process of its own) holds more
 * than 50.
 */
describeBackend("postgres", "scale-out: three workers, one API, rate limits, a killed worker", () => {
  let db: ScaleDatabase;
  beforeAll(() => {
    db = new ScaleDatabase();
  });
  let sinks: ArrivalSinks | undefined;
  const processes: PigeonProcess[] = [];
  afterAll(async () => {
    for (const p of processes) await p.stop().catch(() => {});
    await sinks?.close();
    await db.drop();
  });

  it("delivers every message once per endpoint within each endpoint's rate limit", async () => {
    const endpointSinks = await ArrivalSinks.start(ENDPOINTS);
    sinks = endpointSinks;
    const env = db.env({ PIGEON_CONCURRENCY: String(CONCURRENCY) });
    const api = new PigeonProcess(await freePort(), env, ["--role", "api", "--database", db.url()]);
    processes.push(api);
    // The API process migrates the schema first; the workers then start against it together.
    await api.start();
    const workers: PigeonProcess[] = [];
    for (let i = 0; i < WORKERS; i++) {
      workers.push(new PigeonProcess(await freePort(), env, ["--role", "worker", "--database", db.url()]));
    }
    processes.push(...workers);
    await Promise.all(workers.map((w) => w.start()));

    const client: ApiClient = apiClient(api.baseUrl);
    const appId = await createAppWithEndpoints(
      client,
      { name: "Scale", uid: "scale" },
      endpointSinks.urls.map((url, i) => ({ url, channels: [`c${i}`], rateLimit: RATE })),
    );

    const started = Date.now();
    const producing = produce(client, appId, MESSAGES, (n) => ({
      eventType: "scale.test",
      channels: [`c${n % ENDPOINTS}`],
      payload: { n },
    }));

    // Kill one worker (no shutdown hook runs) once the run is well under way, then restart it.
    const received = async () => (await endpointSinks.counts()).reduce((sum, c) => sum + c.total, 0);
    const threshold = MESSAGES * (0.3 + Math.random() * 0.2);
    await waitUntil(
      async () => (await received()) >= threshold,
      180_000,
      `${Math.round(threshold)} deliveries before the kill`,
    );
    const victim = workers[Math.floor(Math.random() * WORKERS)]!;
    await victim.kill();
    const killedAt = await received();
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
    await victim.start();

    const production = await producing;
    const producedIn = (Date.now() - started) / 1000;
    expect(production.accepted).toBe(MESSAGES);
    await waitUntil(
      async () => (await endpointSinks.counts()).every((c) => c.unique === MESSAGES / ENDPOINTS),
      120_000,
      "every message at its endpoint",
    );
    const seconds = (Date.now() - started) / 1000;

    let duplicates = 0;
    const windows: number[] = [];
    let tightest = Number.POSITIVE_INFINITY;
    const arrivals = await endpointSinks.arrivals();
    for (let i = 0; i < ENDPOINTS; i++) {
      const sink = { arrivals: arrivals[i]! };
      const unique = new Set(sink.arrivals.map((a) => a.n));
      expect(unique.size).toBe(MESSAGES / ENDPOINTS);
      // Only this endpoint's messages arrived here.
      expect([...unique].every((n) => n % ENDPOINTS === i)).toBe(true);
      const dup = duplicatesOf(sink);
      expect(dup.stableIds).toBe(true);
      duplicates += dup.duplicates;
      const times = sink.arrivals.map((a) => a.at);
      windows.push(maxPerSecond(times));
      tightest = Math.min(tightest, shortestSpan(times, RATE + 1));
    }
    console.log(
      `multi-worker test: ${MESSAGES} messages, ${WORKERS} workers + 1 API, worker killed after ` +
        `${killedAt} deliveries; ${duplicates} duplicate deliveries; busiest one-second window per ` +
        `endpoint ${windows.join(",")} (limit ${RATE}; the shortest span of ${RATE + 1} arrivals was ` +
        `${tightest.toFixed(1)} ms); produced in ${producedIn.toFixed(1)} s, all delivered in ${seconds.toFixed(1)} s`,
    );
    expect(duplicates).toBeLessThanOrEqual(2 * CONCURRENCY);
    for (const max of windows) expect(max).toBeLessThanOrEqual(RATE);

    // Nothing is left pending or leased in the database.
    await expect.poll(() => db.deliveryStatuses(), { timeout: 10_000 }).toEqual({ succeeded: MESSAGES });
  }, 400_000);
});
