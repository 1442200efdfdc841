import pg from "pg";
import { afterEach, beforeEach, expect, it, vi } from "vitest";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { slotSpacingMs } from "../../src/store/rate-slots.js";
import type { ClaimedDelivery, ClaimRequest, Store } from "../../src/store/store.js";
import type { Application, Delivery, Endpoint } from "../../src/store/types.js";
import {
  describeBackend,
  openTestStore,
  POSTGRES_TEST_URL,
  postgresAdmin,
  type TestStore,
} from "../helpers/backends.js";
import {
  application,
  attempt,
  claimAt as claimWith,
  delivery,
  endpoint,
  message,
  publish,
  T0,
} from "./fixtures.js";

// PostgreSQL only: what a shared database adds — several workers (stores with their own pools)
// claiming at once, LISTEN/NOTIFY between them, and surviving killed connections.

const LEASE = 60_000;

/** The fixtures' claim, leased for this file's longer LEASE. */
function claimAt(now: number, overrides: Partial<ClaimRequest> = {}): ClaimRequest {
  return claimWith(now, overrides, LEASE);
}

async function setup(store: Store, endpoints: number): Promise<{ app: Application; eps: Endpoint[] }> {
  const app = application();
  await store.createApplication(app);
  const eps: Endpoint[] = [];
  for (let i = 0; i < endpoints; i++) {
    const ep = endpoint(app.id);
    await store.createEndpoint(ep);
    eps.push(ep);
  }
  return { app, eps };
}

/** Unexpired 'sending' rows per endpoint, straight from the table. */
async function leasesPerEndpoint(t: TestStore, now: number): Promise<Map<string, number>> {
  const { rows } = await postgresAdmin().query<{ endpoint_id: string; n: number }>(
    `SELECT endpoint_id, count(*)::int AS n FROM "${t.schema}".deliveries
      WHERE status = 'sending' AND next_attempt_at > $1 GROUP BY endpoint_id`,
    [now],
  );
  return new Map(rows.map((r) => [r.endpoint_id, r.n]));
}

/** Resolves on the listener's next call, or rejects after `ms`. */
function nextCall(subscribe: (fn: () => void) => () => void, ms = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no notification within ${ms} ms`));
    }, ms);
    const unsubscribe = subscribe(() => {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    });
  });
}

async function terminate(applicationName: string): Promise<number[]> {
  const { rows } = await postgresAdmin().query<{ pid: number }>(
    `SELECT pid FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = $1`,
    [applicationName],
  );
  const pids = rows.map((r) => r.pid);
  await postgresAdmin().query("SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) AS pid", [pids]);
  // Wait until the server has reaped them, so the test then exercises the client side only.
  for (let i = 0; i < 100; i++) {
    const left = await postgresAdmin().query("SELECT 1 FROM pg_stat_activity WHERE pid = ANY ($1::int[])", [
      pids,
    ]);
    if (left.rowCount === 0) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  return pids;
}

/**
 * Rows and index entries of `deliveries` read in the test's schema, from the server's statistics;
 * with `index`, only that index's entries.
 */
async function deliveriesRowsRead(t: TestStore, index?: string): Promise<number> {
  // Two statements in one simple query (no parameters there); the names are the test's own.
  const tableReads = index === undefined ? "COALESCE(t.seq_tup_read, 0) + " : "";
  const onlyIndex = index === undefined ? "" : `AND i.indexrelname = '${index}'`;
  const results = (await postgresAdmin().query(
    `SET stats_fetch_consistency = none;
     SELECT ${tableReads}COALESCE(sum(i.idx_tup_read), 0) AS n
       FROM pg_stat_user_tables t LEFT JOIN pg_stat_user_indexes i ON i.relid = t.relid ${onlyIndex}
      WHERE t.schemaname = '${t.schema}' AND t.relname = 'deliveries'
      GROUP BY t.seq_tup_read`,
  )) as unknown as pg.QueryResult<{ n: string }>[];
  return Number(results[1]!.rows[0]!.n);
}

/**
 * Rows and index entries of `deliveries` that `run` reads, through the store's connections or
 * connections of its own that it ends. A backend reports its statistics when it exits, so the
 * store's connections are ended before the first reading (reporting what they read earlier) and
 * after `run` (reporting what it read), and the figure is awaited until it has moved.
 */
async function deliveriesRowsReadDuring(
  t: TestStore,
  run: () => Promise<void>,
  index?: string,
): Promise<number> {
  await terminate(t.applicationName!);
  const before = await deliveriesRowsRead(t, index);
  await run();
  await terminate(t.applicationName!);
  await expect.poll(() => deliveriesRowsRead(t, index)).toBeGreaterThan(before);
  return (await deliveriesRowsRead(t, index)) - before;
}

describeBackend("postgres", "PostgreSQL store: workers sharing one database", () => {
  let t: TestStore;
  beforeEach(async () => {
    t = await openTestStore("postgres");
  });
  afterEach(async () => {
    await t.cleanup();
  });

  /**
   * A worker as the dispatcher drives one: claims one at a time, telling the store what it holds
   * per endpoint (claimed and not yet completed).
   */
  class Worker {
    readonly held = new Map<string, number>();
    constructor(
      readonly name: string,
      readonly store: Store,
    ) {}

    async claim(now: number, cap: number, limit: number, holdLimit = cap): Promise<ClaimedDelivery[]> {
      const claimed = await this.store.claimDueDeliveries(
        claimAt(now, {
          limit,
          endpointConcurrency: cap,
          endpointHoldLimit: holdLimit,
          heldByEndpoint: Object.fromEntries(this.held),
        }),
      );
      for (const c of claimed) this.held.set(c.endpoint.id, (this.held.get(c.endpoint.id) ?? 0) + 1);
      return claimed;
    }

    async complete(items: ClaimedDelivery[], now: number): Promise<void> {
      await this.store.completeDeliveries(
        items.map((c) => ({
          deliveryId: c.delivery.id,
          endpointId: c.endpoint.id,
          attempt: attempt(c.delivery, { succeeded: true, responseStatusCode: 200, errorCode: null }),
          result: "succeeded" as const,
        })),
        now,
      );
      for (const c of items) this.held.set(c.endpoint.id, (this.held.get(c.endpoint.id) ?? 0) - 1);
    }
  }

  it("workers claiming at once never share a delivery and never exceed an endpoint's cap together", async () => {
    const cap = 3;
    const workers = [new Worker("w0", t.store)];
    for (let i = 1; i < 6; i++) workers.push(new Worker(`w${i}`, await t.openAnother()));
    const { app, eps } = await setup(t.store, 4);
    for (const ep of eps) {
      for (let i = 0; i < 15; i++) await publish(t.store, app, [ep], {}, { nextAttemptAt: T0 - 1000 + i });
    }
    const owner = new Map<string, Worker>();
    const claimedItems: ClaimedDelivery[] = [];
    const race = (now: number) =>
      Promise.all(
        workers.map(async (worker) => {
          for (let round = 0; round < 10; round++) {
            const claimed = await worker.claim(now, cap, 2);
            for (const c of claimed) {
              expect(owner.has(c.delivery.id), `${c.delivery.id} claimed twice`).toBe(false);
              owner.set(c.delivery.id, worker);
              claimedItems.push(c);
            }
            for (const [ep, n] of await leasesPerEndpoint(t, now)) {
              expect(n, `endpoint ${ep} over its cap`).toBeLessThanOrEqual(cap);
            }
          }
        }),
      );

    await race(T0);
    // Nothing was completed, so each endpoint ends exactly at its cap, shared among the workers.
    expect([...(await leasesPerEndpoint(t, T0)).values()]).toEqual([cap, cap, cap, cap]);
    expect(owner.size).toBe(4 * cap);
    expect(new Set(owner.values()).size).toBeGreaterThan(1);

    // Completing some frees exactly that much room, which the next race fills and no more.
    const finished = claimedItems.slice(0, 5);
    for (const c of finished) await owner.get(c.delivery.id)!.complete([c], T0 + 1);
    await race(T0 + 2);
    expect([...(await leasesPerEndpoint(t, T0 + 2)).values()]).toEqual([cap, cap, cap, cap]);
    expect(owner.size).toBe(4 * cap + 5);
  });

  it("a worker holding more than the cap while alone never lets the workers together send more than the cap", async () => {
    const cap = 3;
    const holdLimit = 3 * cap;
    const workers = [new Worker("w0", t.store)];
    for (let i = 1; i < 6; i++) workers.push(new Worker(`w${i}`, await t.openAnother()));
    const { app, eps } = await setup(t.store, 4);
    for (const ep of eps) {
      for (let i = 0; i < 40; i++) await publish(t.store, app, [ep], {}, { nextAttemptAt: T0 - 1000 + i });
    }
    const owner = new Map<string, Worker>();
    const claimedItems: ClaimedDelivery[] = [];
    // What a worker sends at once for an endpoint: its holding, up to the cap (the rest waits).
    const inFlight = (ep: string) => workers.reduce((sum, w) => sum + Math.min(w.held.get(ep) ?? 0, cap), 0);
    const race = (now: number) =>
      Promise.all(
        workers.map(async (worker) => {
          for (let round = 0; round < 10; round++) {
            const claimed = await worker.claim(now, cap, 2, holdLimit);
            for (const c of claimed) {
              expect(owner.has(c.delivery.id), `${c.delivery.id} claimed twice`).toBe(false);
              owner.set(c.delivery.id, worker);
              claimedItems.push(c);
            }
            for (const ep of eps)
              expect(inFlight(ep.id), `endpoint ${ep.id} over its cap`).toBeLessThanOrEqual(cap);
          }
        }),
      );

    await race(T0);
    // Completing some of what each worker holds lets others in only as far as the cap allows.
    const completed = new Set<string>();
    for (const round of [1, 2, 3]) {
      for (const worker of workers) {
        const done = claimedItems
          .filter((c) => owner.get(c.delivery.id) === worker && !completed.has(c.delivery.id))
          .slice(0, 2);
        for (const c of done) completed.add(c.delivery.id);
        await worker.complete(done, T0 + round * 10);
      }
      await race(T0 + round * 10 + 5);
    }
    expect(completed.size).toBeGreaterThan(0);
  });

  it("takes up to the hold limit while no other worker holds a lease on the endpoint, else shares the cap", async () => {
    const workerA = t.store;
    const workerB = await t.openAnother();
    const { app, eps } = await setup(workerA, 1);
    const ep = eps[0]!;
    for (let i = 0; i < 20; i++) await publish(workerA, app, [ep], {}, { nextAttemptAt: T0 - 100 + i });
    const claim = (store: Store, held: number, now = T0) =>
      store.claimDueDeliveries(
        claimAt(now, { endpointConcurrency: 4, endpointHoldLimit: 12, heldByEndpoint: { [ep.id]: held } }),
      );

    // Alone, A may hold three caps' worth; it sends only four at once.
    const byA = await claim(workerA, 0);
    expect(byA).toHaveLength(12);
    // A's leases fill the cap, so B gets nothing.
    expect(await claim(workerB, 0)).toHaveLength(0);
    // A has recorded ten: its two leases left leave B room for two, not for its hold limit.
    await workerA.completeDeliveries(
      byA
        .slice(0, 10)
        .map((c) => ({ deliveryId: c.delivery.id, endpointId: ep.id, result: "succeeded" as const })),
      T0 + 1,
    );
    expect(await claim(workerB, 0, T0 + 2)).toHaveLength(2);
    // Now A is no longer alone: its two and B's two fill the cap.
    expect(await claim(workerA, 2, T0 + 2)).toHaveLength(0);
  });

  /** Endpoint ids of a claim's rows. */
  const endpointsOf = (claimed: ClaimedDelivery[]) => new Set(claimed.map((c) => c.endpoint.id));

  it("live workers split the endpoints with work between them; a lone worker takes them all", async () => {
    const a = new Worker("a", t.store);
    const b = new Worker("b", await t.openAnother());
    const { app, eps } = await setup(t.store, 8);
    for (let i = 0; i < 10; i++) await publish(t.store, app, eps, {}, { nextAttemptAt: T0 - 100 + i });
    // Both announce themselves with a claim before the work comes due.
    expect(await a.claim(T0 - 200, 4, 100, 12)).toEqual([]);
    expect(await b.claim(T0 - 200, 4, 100, 12)).toEqual([]);

    const byA = endpointsOf(await a.claim(T0, 4, 1000, 12));
    const byB = endpointsOf(await b.claim(T0, 4, 1000, 12));
    expect(byA.size).toBe(4);
    expect(byB.size).toBe(4);
    expect([...byA].filter((id) => byB.has(id))).toEqual([]);
    // Each is alone on its endpoints, so each holds up to its hold limit there: 10 due rows each.
    expect(a.held.get([...byA][0]!)).toBe(10);
  });

  it("a claim fills its limit from its own endpoints when live workers split them, not just its share of the head", async () => {
    const a = new Worker("a", t.store);
    const b = new Worker("b", await t.openAnother());
    const { app, eps } = await setup(t.store, 4);
    // 30 rounds to all four endpoints: in due order the endpoints' rows alternate.
    for (let i = 0; i < 30; i++) await publish(t.store, app, eps, {}, { nextAttemptAt: T0 - 100 + i });
    expect(await a.claim(T0 - 200, 100, 100, 300)).toEqual([]);
    expect(await b.claim(T0 - 200, 100, 100, 300)).toEqual([]);

    // The first 40 due rows hold 10 of each endpoint, and A's share is two endpoints. Bounded by
    // its endpoints' rows among those 40, it took 20; scaled to the claim's limit, it takes 40:
    // the earliest 20 of each of its two.
    const byA = await a.claim(T0, 100, 40, 300);
    expect(byA).toHaveLength(40);
    const endpointsOfA = endpointsOf(byA);
    expect(endpointsOfA.size).toBe(2);
    for (const id of endpointsOfA) {
      const due = byA.filter((c) => c.endpoint.id === id).map((c) => c.delivery.nextAttemptAt);
      expect(due).toHaveLength(20);
      expect(Math.max(...due)).toBe(T0 - 100 + 19);
    }
    const byB = await b.claim(T0, 100, 40, 300);
    expect(byB).toHaveLength(40);
    expect([...endpointsOf(byB)].filter((id) => endpointsOfA.has(id))).toEqual([]);
  });

  it("a worker that stops leaves its share to the others at once; a store that never claimed has none", async () => {
    const a = new Worker("a", t.store);
    const b = new Worker("b", await t.openAnother());
    const api = await t.openAnother();
    const { app, eps } = await setup(api, 6);
    await publish(api, app, eps, {}, { nextAttemptAt: T0 });
    expect(await a.claim(T0 - 200, 4, 100)).toEqual([]);
    expect(await b.claim(T0 - 200, 4, 100)).toEqual([]);
    await b.store.close();
    expect(endpointsOf(await a.claim(T0, 4, 1000)).size).toBe(6);
  });

  it("a worker that joins while another holds every endpoint gets a share once the holder stops refilling the rest", async () => {
    const a = new Worker("a", t.store);
    const b = new Worker("b", await t.openAnother());
    const { app, eps } = await setup(t.store, 4);
    for (let i = 0; i < 30; i++) await publish(t.store, app, eps, {}, { nextAttemptAt: T0 - 100 + i });
    // Alone, A takes every endpoint, up to its hold limit on each.
    const first = await a.claim(T0, 4, 1000, 12);
    expect(endpointsOf(first).size).toBe(4);
    // B joins: A's leases fill every cap, so B finds no room.
    expect(await b.claim(T0 + 1, 4, 1000, 12)).toEqual([]);

    // A sends and records half of what it holds, then refills: B starves, so A refills only its
    // share (two endpoints) and lets the other two run dry.
    const half = eps.flatMap((ep) => first.filter((c) => c.endpoint.id === ep.id).slice(0, 6));
    await a.complete(half, T0 + 2);
    const refill = await a.claim(T0 + 3, 4, 1000, 12);
    const kept = endpointsOf(refill);
    expect(kept.size).toBe(2);
    const dropped = eps.filter((ep) => !kept.has(ep.id)).map((ep) => ep.id);

    // Once A has recorded what it held there, B takes those two, and only those.
    await a.complete(
      first.filter((c) => dropped.includes(c.endpoint.id) && !half.includes(c)),
      T0 + 4,
    );
    const byB = endpointsOf(await b.claim(T0 + 5, 4, 1000, 12));
    expect([...byB].sort()).toEqual([...dropped].sort());
    // And A keeps refilling its own two: B holds its share, so nobody starves.
    expect(endpointsOf(await a.claim(T0 + 6, 4, 1000, 12)).size).toBeLessThanOrEqual(2);
  });

  it("a claim that takes rows reports how many other workers are live, for the dispatcher's pacing", async () => {
    const a = new Worker("a", t.store);
    const b = new Worker("b", await t.openAnother());
    const { app, eps } = await setup(t.store, 4);
    for (let i = 0; i < 4; i++) await publish(t.store, app, eps, {}, { nextAttemptAt: T0 - 100 + i });
    expect(a.store.livePeerCount?.()).toBe(0);
    expect((await a.claim(T0 - 50, 4, 2)).length).toBe(2);
    // Alone so far.
    expect(a.store.livePeerCount?.()).toBe(0);
    expect((await b.claim(T0 - 40, 4, 2)).length).toBeGreaterThan(0);
    expect(b.store.livePeerCount?.()).toBe(1);
    expect((await a.claim(T0 - 30, 4, 2)).length).toBeGreaterThan(0);
    expect(a.store.livePeerCount?.()).toBe(1);
    // B stops: its heartbeat goes with it, and A's next claim that takes rows sees nobody.
    await b.store.close();
    expect((await a.claim(T0, 4, 2)).length).toBeGreaterThan(0);
    expect(a.store.livePeerCount?.()).toBe(0);
  });

  it("a worker whose last claim is older than the peer timeout gets no share", async () => {
    const a = new Worker("a", t.store);
    const quiet = new Worker("quiet", await t.openAnother());
    const { app, eps } = await setup(t.store, 4);
    await publish(t.store, app, eps, {}, { nextAttemptAt: T0 });
    expect(await quiet.claim(T0 - 10_000, 4, 100)).toEqual([]);
    const claimed = await a.store.claimDueDeliveries(
      claimAt(T0, { endpointConcurrency: 4, peerTimeoutMs: 5_000, heldByEndpoint: {} }),
    );
    expect(endpointsOf(claimed).size).toBe(4);
  });

  it("a dead worker's expired leases are claimed first, within the room, beside pending rows", async () => {
    // The due indexes hold pending rows only; expired leases are found through the lease index.
    const dead = await t.openAnother();
    const { app, eps } = await setup(t.store, 2);
    const [ep, other] = eps as [Endpoint, Endpoint];
    for (let i = 0; i < 6; i++) await publish(t.store, app, [ep], {}, { nextAttemptAt: T0 + i });
    await publish(t.store, app, [other], {}, { nextAttemptAt: T0 + 20 });
    const leased = await dead.claimDueDeliveries(
      claimAt(T0 + 10, { limit: 2, endpointConcurrency: 4, leaseUntil: T0 + 100 }),
    );
    expect(leased.map((c) => c.endpoint.id)).toEqual([ep.id, ep.id]);

    // Before the leases expire, the dead worker's two count against ep's cap of 3. Its heartbeat
    // is older than the peer timeout (seconds, where a lease lasts minutes), so this worker no
    // longer leaves it a share of the endpoints.
    expect(await t.store.nextDueAt()).toBe(T0 + 2);
    const early = await t.store.claimDueDeliveries(
      claimAt(T0 + 50, { limit: 100, endpointConcurrency: 3, heldByEndpoint: {}, peerTimeoutMs: 20 }),
    );
    expect(early.filter((c) => c.endpoint.id === ep.id)).toHaveLength(1);
    expect(early.filter((c) => c.endpoint.id === other.id)).toHaveLength(1);
    expect(early.some((c) => c.wasLeased)).toBe(false);

    // After: the two expired leases come back first; with the one held here they fill the cap of 4.
    const late = await t.store.claimDueDeliveries(
      claimAt(T0 + 200, { limit: 100, endpointConcurrency: 4, heldByEndpoint: { [ep.id]: 1 } }),
    );
    const onEp = late.filter((c) => c.endpoint.id === ep.id);
    expect(onEp).toHaveLength(3);
    expect(
      onEp
        .filter((c) => c.wasLeased)
        .map((c) => c.delivery.id)
        .sort(),
    ).toEqual(leased.map((c) => c.delivery.id).sort());
    const ids = [...early, ...late].map((c) => c.delivery.id);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it("deleting an endpoint from another session (its own search_path) still deletes its attempts", async () => {
    const { app, eps } = await setup(t.store, 1);
    const ep = eps[0]!;
    const { msg, deliveries } = await publish(t.store, app, [ep]);
    const recorded = attempt(deliveries[0]!);
    await t.store.completeDeliveries(
      [{ deliveryId: deliveries[0]!.id, endpointId: ep.id, attempt: recorded, result: "failed" }],
      T0,
    );
    expect(await t.store.getAttempt(msg.id, recorded.id)).toBeDefined();
    // The admin connection's search_path does not include the test's schema.
    await postgresAdmin().query(`DELETE FROM "${t.schema}".endpoints WHERE id = $1`, [ep.id]);
    expect(await t.store.getAttempt(msg.id, recorded.id)).toBeUndefined();
  });

  it("deleting an endpoint reads its own deliveries, in every status, not the whole table", async () => {
    const { app, eps } = await setup(t.store, 2);
    const [gone, kept] = eps as [Endpoint, Endpoint];
    for (let i = 0; i < 4; i++) await publish(t.store, app, [gone, kept]);
    // Held: written while the endpoint is pending its handshake (the store decides at the write).
    await t.store.updateEndpoint({ ...gone, status: "pending" }, { handshakeState: true });
    await publish(t.store, app, [gone], {}, { status: "held" });
    for (let i = 0; i < 300; i++) await publish(t.store, app, [kept], {}, { status: "succeeded" });
    // One of each status on the endpoint to delete: sending, succeeded, failed, pending, held.
    const claimed = await t.store.claimDueDeliveries(claimAt(T0 + 1, { limit: 6 }));
    const onGone = claimed.filter((c) => c.endpoint.id === gone.id);
    expect(onGone.length).toBeGreaterThanOrEqual(3);
    await t.store.completeDeliveries(
      onGone.slice(0, 2).map((c, i) => ({
        deliveryId: c.delivery.id,
        endpointId: gone.id,
        attempt: attempt(c.delivery),
        result: i === 0 ? ("succeeded" as const) : ("failed" as const),
      })),
      T0 + 2,
    );
    // Read through the store's own connections, whose statistics are reported before the delete.
    const statuses = async (ep: Endpoint) =>
      (
        await (t.store as PostgresStore).pool.query<{ status: string }>(
          "SELECT status FROM deliveries WHERE endpoint_id = $1 ORDER BY status",
          [ep.id],
        )
      ).rows.map((r) => r.status);
    expect(new Set(await statuses(gone))).toEqual(
      new Set(["held", "pending", "sending", "succeeded", "failed"]),
    );
    const keptBefore = await statuses(kept);
    expect(keptBefore.length).toBeGreaterThan(300);

    const read = await deliveriesRowsReadDuring(t, async () => {
      // On a connection of its own, ended before the figures are read again.
      const client = new pg.Client({ connectionString: POSTGRES_TEST_URL });
      await client.connect();
      await client.query(`DELETE FROM "${t.schema}".endpoints WHERE id = $1`, [gone.id]);
      await client.end();
    });
    // Its own rows (each with a version or two still in the indexes) and nothing like the
    // 300-odd rows of the other endpoint, which a scan of the table or of an index by message reads.
    expect(read).toBeLessThan(60);

    expect(await statuses(gone)).toEqual([]);
    expect(await statuses(kept)).toEqual(keptBefore);
  });

  it("nextDueAt finds the earliest lease end reading one lease per endpoint, not every lease", async () => {
    const { app, eps } = await setup(t.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    for (let i = 0; i < 150; i++) await publish(t.store, app, [a, b]);
    // 150 leases on each endpoint, b's ending first.
    const wide = { limit: 1000, endpointConcurrency: 1000 };
    const onA = await t.store.claimDueDeliveries(
      claimAt(T0 + 1, { ...wide, excludeEndpointIds: [b.id], leaseUntil: T0 + 900 }),
    );
    const onB = await t.store.claimDueDeliveries(
      claimAt(T0 + 2, {
        ...wide,
        excludeEndpointIds: [a.id],
        leaseUntil: T0 + 700,
        heldByEndpoint: { [a.id]: 150 },
      }),
    );
    expect([onA.length, onB.length]).toEqual([150, 150]);
    await publish(t.store, app, [a], {}, { nextAttemptAt: T0 + 800 });
    expect(await t.store.nextDueAt()).toBe(T0 + 700);

    // Counted on the lease index alone. The due index also holds the claimed rows' pending
    // versions, which a scan marks dead only once no open snapshot anywhere in the server can
    // see them: with other tests' transactions running beside this one, it read them all again.
    let next: number | undefined;
    const read = await deliveriesRowsReadDuring(
      t,
      async () => {
        next = await t.store.nextDueAt();
      },
      "deliveries_sending",
    );
    expect(next).toBe(T0 + 700);
    // A few index entries; a minimum over the lease index, ordered by endpoint first, read all 300.
    expect(read).toBeLessThan(20);
  });

  it("inserts no delivery for an endpoint deleted meanwhile: publishing keeps the rest, requeueing does nothing", async () => {
    const { app, eps } = await setup(t.store, 2);
    const [live, deleted] = eps as [Endpoint, Endpoint];
    const msg = message(app.id);
    // The deliveries were planned while both endpoints existed.
    const planned = [delivery(msg, live), delivery(msg, deleted)];
    await t.store.deleteEndpoint(app.id, deleted.id);
    await t.store.createMessage(msg, planned);
    expect(await t.store.getMessage(app.id, msg.id)).toBeDefined();
    expect(await t.store.getDelivery(msg.id, live.id)).toBeDefined();
    expect(await t.store.getDelivery(msg.id, deleted.id)).toBeUndefined();

    await t.store.requeueDelivery(planned[1]!, T0 + 5);
    const { rows } = await postgresAdmin().query(
      `SELECT count(*)::int AS n FROM "${t.schema}".deliveries WHERE endpoint_id = $1`,
      [deleted.id],
    );
    expect(rows[0].n).toBe(0);
    // Requeueing for a live endpoint still creates or resets the row.
    await t.store.requeueDelivery(delivery(msg, live), T0 + 5);
    expect((await t.store.getDelivery(msg.id, live.id))?.status).toBe("pending");
  });

  it("counts other workers' unexpired leases against the cap, and its own through heldByEndpoint", async () => {
    const workerA = t.store;
    const workerB = await t.openAnother();
    const { app, eps } = await setup(workerA, 1);
    const ep = eps[0]!;
    for (let i = 0; i < 12; i++) await publish(workerA, app, [ep], {}, { nextAttemptAt: T0 - 100 + i });
    const claim = (store: Store, cap: number, held: number, now = T0) =>
      store.claimDueDeliveries(claimAt(now, { endpointConcurrency: cap, heldByEndpoint: { [ep.id]: held } }));

    expect(await claim(workerA, 4, 0)).toHaveLength(4);
    // B holds nothing itself; A's four leases fill the cap.
    expect(await claim(workerB, 4, 0)).toHaveLength(0);
    expect(await claim(workerB, 6, 0)).toHaveLength(2);
    expect(await claim(workerB, 6, 2)).toHaveLength(0);
    // A's own leases are what A says it holds: a row it has sent but not yet recorded is not
    // in flight, so telling the store it holds 3 of its 4 leases leaves room for one more.
    expect(await claim(workerA, 6, 3)).toHaveLength(1);
    // Once the leases expire they count no more, and those rows are due again.
    expect(await claim(workerB, 4, 0, T0 + LEASE)).toHaveLength(4);
  });

  it("two workers disabling one endpoint at once emit exactly one endpoint.disabled event", async () => {
    const workerB = await t.openAnother();
    const { app, eps } = await setup(t.store, 5);
    for (const ep of eps) {
      const a = await publish(t.store, app, [ep]);
      const b = await publish(t.store, app, [ep]);
      const disable = (d: (typeof a.deliveries)[0]) => ({
        deliveryId: d.id,
        endpointId: ep.id,
        attempt: attempt(d),
        result: "failed" as const,
        disableEndpoint: { reason: "failing" },
      });
      await Promise.all([
        t.store.completeDeliveries([disable(a.deliveries[0]!)], T0 + 1),
        workerB.completeDeliveries([disable(b.deliveries[0]!)], T0 + 1),
      ]);
    }
    const events = (await t.store.listOperationalEvents({ limit: 100 })).data;
    expect(events.map((e) => e.data.endpointId).sort()).toEqual(eps.map((e) => e.id).sort());
  });

  it("a value PostgreSQL refuses costs only its own outcome: the rest of the batch is recorded", async () => {
    const { app, eps } = await setup(t.store, 1);
    const ep = eps[0]!;
    const ds = [];
    for (let i = 0; i < 4; i++)
      ds.push(...(await publish(t.store, app, [ep], {}, { nextAttemptAt: T0 + i })).deliveries);
    const [ok, badAttempt, badOutcome, failed] = ds as [Delivery, Delivery, Delivery, Delivery];
    await t.store.claimDueDeliveries(claimAt(T0 + 10));
    const now = T0 + 100;
    const good = (d: Delivery) =>
      attempt(d, { createdAt: now, succeeded: true, responseStatusCode: 200, errorCode: null });
    // Values PostgreSQL refuses (numeric_value_out_of_range, a data exception): a duration beyond
    // its integer column, a next attempt time beyond bigint.
    const okAttempt = good(ok);
    const refusedAttempt = attempt(badAttempt, { createdAt: now, responseDurationMs: 2 ** 31 });
    const failedAttempt = attempt(failed, { createdAt: now });
    const refusals = vi.spyOn(console, "error").mockImplementation(() => {});
    try {
      await t.store.completeDeliveries(
        [
          { deliveryId: ok.id, endpointId: ep.id, attempt: okAttempt, result: "succeeded" },
          { deliveryId: badAttempt.id, endpointId: ep.id, attempt: refusedAttempt, result: "succeeded" },
          {
            deliveryId: badOutcome.id,
            endpointId: ep.id,
            attempt: good(badOutcome),
            result: "retry",
            nextAttemptAt: 2 ** 64,
          },
          { deliveryId: failed.id, endpointId: ep.id, attempt: failedAttempt, result: "failed" },
        ],
        now,
      );
      expect(refusals.mock.calls.map((c) => String(c[0]))).toEqual([
        expect.stringMatching(new RegExp(`${badAttempt.id}.*without its attempt`)),
        expect.stringMatching(new RegExp(`${badOutcome.id}.*left it under its lease`)),
      ]);
    } finally {
      refusals.mockRestore();
    }

    const get = (d: Delivery) => t.store.getDelivery(d.msgId, ep.id);
    expect(await get(ok)).toMatchObject({ status: "succeeded", attempts: 1 });
    expect(await t.store.getAttempt(ok.msgId, okAttempt.id)).toEqual(okAttempt);
    // Its state is kept, so it is not sent again; only the refused attempt's record is missing.
    expect(await get(badAttempt)).toMatchObject({ status: "succeeded", attempts: 0 });
    expect(await t.store.getAttempt(badAttempt.msgId, refusedAttempt.id)).toBeUndefined();
    // Nothing of it could be stored: still under its lease, due again when the lease ends.
    expect(await get(badOutcome)).toMatchObject({
      status: "sending",
      attempts: 0,
      nextAttemptAt: T0 + 10 + LEASE,
    });
    expect(await get(failed)).toMatchObject({ status: "failed", attempts: 1 });
    expect(await t.store.getAttempt(failed.msgId, failedAttempt.id)).toEqual(failedAttempt);
  });

  it("a success on a healthy endpoint does not rewrite (or lock) the endpoint row", async () => {
    const { app, eps } = await setup(t.store, 1);
    const ep = eps[0]!;
    const { deliveries } = await publish(t.store, app, [ep]);
    const version = async () =>
      (
        await postgresAdmin().query(`SELECT xmin::text AS v FROM "${t.schema}".endpoints WHERE id = $1`, [
          ep.id,
        ])
      ).rows[0].v;
    const before = await version();
    await t.store.completeDeliveries(
      [
        {
          deliveryId: deliveries[0]!.id,
          endpointId: ep.id,
          attempt: attempt(deliveries[0]!, { succeeded: true, responseStatusCode: 200, errorCode: null }),
          result: "succeeded",
        },
      ],
      T0 + 1,
    );
    expect(await version()).toBe(before);
  });

  it("reserves send slots through the database, so two workers share one rate", async () => {
    const workerB = await t.openAnother();
    const { eps } = await setup(t.store, 1);
    const ep = eps[0]!;
    const slots = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (i % 2 === 0 ? t.store : workerB).reserveSendSlot(ep.id, 50, T0)),
    );
    slots.sort((x, y) => x - y);
    expect(slots[0]).toBe(T0);
    for (let i = 1; i < slots.length; i++)
      expect(slots[i]! - slots[i - 1]!).toBeCloseTo(slotSpacingMs(50), 2);
  });
});

describeBackend("postgres", "PostgreSQL store: LISTEN/NOTIFY", () => {
  let t: TestStore;
  let other: TestStore | undefined;
  beforeEach(async () => {
    t = await openTestStore("postgres");
  });
  afterEach(async () => {
    await other?.cleanup();
    other = undefined;
    await t.cleanup();
  });

  it("wakes another worker on new work, on commit, and not across schemas", async () => {
    const publisher = t.store;
    const worker = (await t.openAnother()) as PostgresStore;
    other = await openTestStore("postgres");
    const stranger = other.store as PostgresStore;
    let strangerCalls = 0;
    stranger.onNewWork(() => strangerCalls++);
    let workerCalls = 0;
    worker.onNewWork(() => workerCalls++);
    await Promise.all([worker.whenListening(), stranger.whenListening()]);
    const { app, eps } = await setup(publisher, 2);
    const [a, b] = eps as [Endpoint, Endpoint];

    // Only held deliveries (for an endpoint pending its handshake): nothing to do yet, nobody woken.
    await publisher.updateEndpoint({ ...a, status: "pending" }, { handshakeState: true });
    await publish(publisher, app, [a], {}, { status: "held" });
    await new Promise((r) => setTimeout(r, 150));
    expect(workerCalls).toBe(0);

    const woken = nextCall((fn) => worker.onNewWork(fn));
    await publish(publisher, app, [a, b]);
    await woken;

    // Every other way work gets queued wakes it too.
    const wake = async (action: () => Promise<unknown>) => {
      const next = nextCall((fn) => worker.onNewWork(fn));
      await action();
      await next;
    };
    await wake(() => publisher.markEndpointVerified(a.id, a.url, T0));
    const claimed = await publisher.claimDueDeliveries(claimAt(Date.now()));
    await wake(() => publisher.releaseDeliveries([claimed[0]!.delivery.id], Date.now()));
    const failed = await publish(publisher, app, [b], {}, { status: "failed" });
    await wake(() => publisher.recoverFailedDeliveries(b.id, 0, Date.now()));
    await wake(() => publisher.requeueDelivery(failed.deliveries[0]!, Date.now()));
    expect(strangerCalls).toBe(0);
  });

  it("survives terminated connections: reads retry, writes work, the listener re-subscribes", async () => {
    const store = t.store as PostgresStore;
    const publisher = await t.openAnother({ applicationName: "pigeon-test-publisher" });
    const { app, eps } = await setup(store, 1);
    let calls = 0;
    store.onNewWork(() => calls++);
    await store.whenListening();
    const listenerPid = store.listenerPid;
    // Warm the pool so several idle connections are there to be killed.
    await Promise.all(Array.from({ length: 6 }, () => store.getApplication(app.id)));

    const killed = await terminate(t.applicationName!);
    expect(killed).toContain(listenerPid);
    expect(killed.length).toBeGreaterThan(1);

    // Reads right after the kill retry on a fresh connection.
    const reads = await Promise.all(Array.from({ length: 6 }, () => store.getApplication(app.id)));
    expect(reads.every((r) => r?.id === app.id)).toBe(true);
    // Writes go through on fresh connections too.
    const another = application();
    await store.createApplication(another);
    expect(await store.getApplication(another.id)).toEqual(another);

    // The listener comes back on a new connection, wakes its subscribers once (a notification may
    // have been missed), and hears the next one.
    for (let i = 0; i < 200 && (store.listenerPid === undefined || store.listenerPid === listenerPid); i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await store.whenListening();
    expect(store.listenerPid).toBeDefined();
    expect(store.listenerPid).not.toBe(listenerPid);
    await expect.poll(() => calls).toBeGreaterThanOrEqual(1);
    const woken = nextCall((fn) => store.onNewWork(fn));
    await publish(publisher, app, [eps[0]!]);
    await woken;
    const claimed = await store.claimDueDeliveries(claimAt(Date.now()));
    expect(claimed).toHaveLength(1);
  });
});

describeBackend("postgres", "PostgreSQL store: opening", () => {
  it("takes the schema from the URL and creates it; two stores can migrate at once", async () => {
    const schema = `pigeon_test_url_${Date.now().toString(36)}`;
    try {
      const [a, b] = await Promise.all([
        PostgresStore.open(`${POSTGRES_TEST_URL}?schema=${schema}&application_name=pigeon-test-url`),
        PostgresStore.open(`${POSTGRES_TEST_URL}?schema=${schema}&application_name=pigeon-test-url`),
      ]);
      const app = application();
      await a.createApplication(app);
      expect(await b.getApplication(app.id)).toEqual(app);
      const { rows } = await postgresAdmin().query(`SELECT count(*)::int AS n FROM "${schema}".applications`);
      expect(rows[0].n).toBe(1);
      const search = await a.pool.query("SHOW search_path");
      expect(search.rows[0].search_path).toBe(`"${schema}"`);
      await Promise.all([a.close(), b.close()]);
    } finally {
      await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    }
  });

  it("rejects a schema name that is not a plain identifier", async () => {
    await expect(PostgresStore.open(POSTGRES_TEST_URL, { schema: 'x"; DROP TABLE y; --' })).rejects.toThrow(
      /PostgreSQL schema/,
    );
  });
});
