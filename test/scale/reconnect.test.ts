import { afterAll, beforeAll, expect, it } from "vitest";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { DeliveryOutcome } from "../../src/store/store.js";
import { describeBackend, POSTGRES_TEST_URL } from "../helpers/backends.js";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { waitUntil } from "../helpers/sink.js";
import { application, attempt, endpoint, publish, T0 } from "../store/fixtures.js";
import {
  ArrivalSinks,
  apiClient,
  createAppWithEndpoints,
  duplicatesOf,
  produce,
  ScaleDatabase,
} from "./helpers.js";

const MESSAGES = 2_500;
const ENDPOINTS = 2;
const TERMINATIONS = 4;
const CONCURRENCY = 64;
/** Production is paced so the run lasts several seconds and every termination lands mid-run. */
const MESSAGES_PER_SECOND = 400;

/**
 * A `--role all` process on PostgreSQL delivers 5,000 deliveries (2,500 messages × 2 endpoints)
 * while every connection it holds (pool and LISTEN) is terminated four times with
 * pg_terminate_backend. It must reconnect and lose nothing: every message reaches both endpoints,
 * the API keeps answering (a client may have to retry a request that was on a killed
 * connection: producers retry with the same eventId, so a retry never makes a second message),
 * and nothing is left pending or leased in the database.
 *
 * Only this test's connections are terminated: they carry their own application_name
 * (`pigeon-scale-…`); a plain `LIKE 'pigeon%'` would also hit other test files running at the
 * same time on the same server.
 */
describeBackend("postgres", "scale-out: reconnecting after terminated connections", () => {
  let db: ScaleDatabase;
  beforeAll(() => {
    db = new ScaleDatabase();
  });
  let sinks: ArrivalSinks | undefined;
  let pigeon: PigeonProcess | undefined;
  afterAll(async () => {
    await pigeon?.stop().catch(() => {});
    await sinks?.close();
    await db.drop();
  });

  it("loses nothing when PostgreSQL terminates its connections mid-run", async () => {
    const endpointSinks = await ArrivalSinks.start(ENDPOINTS);
    sinks = endpointSinks;
    pigeon = new PigeonProcess(await freePort(), db.env({ PIGEON_CONCURRENCY: String(CONCURRENCY) }), [
      "--role",
      "all",
      "--database",
      db.url(),
    ]);
    await pigeon.start();
    const client = apiClient(pigeon.baseUrl);
    const appId = await createAppWithEndpoints(
      client,
      { name: "Reconnect" },
      endpointSinks.urls.map((url) => ({ url })),
    );

    const started = Date.now();
    const producing = produce(
      client,
      appId,
      MESSAGES,
      (n) => ({ eventType: "reconnect.test", payload: { n } }),
      {
        pace: async (n) => {
          const wait = started + (n * 1000) / MESSAGES_PER_SECOND - Date.now();
          if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        },
      },
    );

    const total = MESSAGES * ENDPOINTS;
    const received = async () => (await endpointSinks.counts()).reduce((sum, c) => sum + c.total, 0);
    const terminated: number[] = [];
    const apiTries: number[] = [];
    for (let k = 0; k < TERMINATIONS; k++) {
      const threshold = total * (0.1 + 0.2 * k);
      await waitUntil(
        async () => (await received()) >= threshold,
        30_000,
        `${threshold} deliveries before termination ${k + 1}`,
      );
      const rows = await db.query<{ killed: boolean }>(
        `SELECT pg_terminate_backend(pid) AS killed FROM pg_stat_activity
          WHERE application_name = $1 AND pid <> pg_backend_pid()`,
        [db.applicationName],
      );
      // At least the LISTEN connection is always there.
      const killed = rows.filter((r) => r.killed).length;
      expect(killed).toBeGreaterThan(0);
      terminated.push(killed);
      // The API answers right after, possibly after a retry by the client.
      let tries = 0;
      for (;;) {
        tries++;
        const res = await client.call("GET", `/api/v1/app/${appId}`).catch(() => undefined);
        if (res?.status === 200) break;
        expect(tries).toBeLessThan(20);
        await new Promise((r) => setTimeout(r, 50));
      }
      apiTries.push(tries);
    }

    const production = await producing;
    expect(production.accepted).toBe(MESSAGES);
    await waitUntil(
      async () => (await endpointSinks.counts()).every((c) => c.unique === MESSAGES),
      45_000,
      "every message at both endpoints",
    );
    const seconds = (Date.now() - started) / 1000;

    let duplicates = 0;
    for (const arrivals of await endpointSinks.arrivals()) {
      expect(new Set(arrivals.map((a) => a.n)).size).toBe(MESSAGES);
      const dup = duplicatesOf({ arrivals });
      expect(dup.stableIds).toBe(true);
      duplicates += dup.duplicates;
    }
    console.log(
      `reconnect test: ${total} deliveries in ${seconds.toFixed(1)} s; ${TERMINATIONS} terminations ` +
        `killed ${terminated.join(",")} connections; API answered after ${apiTries.join(",")} tries; ` +
        `${production.retries} producer retries; ${duplicates} duplicate deliveries`,
    );
    // A killed connection can only delay recording an outcome (the dispatcher keeps it and tries
    // again); a re-send needs a lease to run out first, so duplicates stay within what was held.
    expect(duplicates).toBeLessThanOrEqual(TERMINATIONS * 2 * CONCURRENCY);
    await expect.poll(() => db.deliveryStatuses(), { timeout: 10_000 }).toEqual({ succeeded: total });
    // Still alive and reconnected.
    expect((await client.call("GET", "/api/v1/health")).status).toBe(204);
  }, 90_000);

  /**
   * A connection killed while a completion commits leaves the dispatcher not knowing whether the
   * commit happened (PostgreSQL commits, then the backend dies before ReadyForQuery). The
   * dispatcher keeps the batch and writes it again together with the next outcomes; that replay
   * must succeed and count nothing twice, or the batch would fail (duplicate attempt ids) on
   * every flush from then on and the worker would never record another outcome.
   */
  it("accepts a completion replayed after an ambiguous commit", async () => {
    // Its own schema: the process of the test above is still running on the other one.
    const db = new ScaleDatabase();
    const store = await PostgresStore.open(POSTGRES_TEST_URL, {
      schema: db.schema,
      applicationName: db.applicationName,
      poolSize: 2,
    }).catch(async (error: unknown) => {
      await db.drop();
      throw error;
    });
    try {
      const app = application();
      await store.createApplication(app);
      const ep = endpoint(app.id);
      await store.createEndpoint(ep);
      const first = await publish(store, app, [ep]);
      const second = await publish(store, app, [ep]);
      const claimed = await store.claimDueDeliveries({
        now: T0,
        limit: 10,
        leaseUntil: T0 + 60_000,
        excludeEndpointIds: [],
        endpointConcurrency: 10,
        heldByEndpoint: {},
      });
      expect(claimed).toHaveLength(2);
      const outcome = (d: (typeof first.deliveries)[number]): DeliveryOutcome => ({
        deliveryId: d.id,
        endpointId: ep.id,
        attempt: attempt(d, { succeeded: true, responseStatusCode: 200, errorCode: null }),
        result: "succeeded",
      });
      const a = outcome(first.deliveries[0]!);
      const b = outcome(second.deliveries[0]!);
      await store.completeDeliveries([a], T0 + 10);
      // The answer to that commit was "lost": the dispatcher writes it again with the next one.
      await store.completeDeliveries([a, b], T0 + 20);
      const rows = await db.query<{ id: string; status: string; attempts: number; n: number }>(
        `SELECT d.id, d.status, d.attempts, (SELECT count(*)::int FROM "${db.schema}".attempts a
                                             WHERE a.delivery_id = d.id) AS n
           FROM "${db.schema}".deliveries d ORDER BY d.id`,
      );
      expect(rows.map((r) => [r.status, r.attempts, r.n])).toEqual([
        ["succeeded", 1, 1],
        ["succeeded", 1, 1],
      ]);
    } finally {
      await store.close();
      await db.drop();
    }
  });
});
