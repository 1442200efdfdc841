import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeBackend } from "../helpers/backends.js";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { waitUntil } from "../helpers/sink.js";
import { apiClient, createAppWithEndpoints, produce, ScaleDatabase } from "./helpers.js";

const ENDPOINTS = 8;
const MESSAGES = 800;
/** A small cap and a slow sink make the backlog take seconds to drain, long enough to watch. */
const ENDPOINT_CONCURRENCY = 4;
const SINK_DELAY_MS = 20;

/**
 * A worker that joins while another is draining a backlog gets a share of it. Without sharing,
 * the first worker's leases fill every endpoint's cap (it holds three caps' worth of each while
 * alone) for as long as the backlog lasts, and the second worker finds no room anywhere; this
 * test then never sees both holding leases.
 *
 * Worker A starts alone on a backlog of 800 messages × 8 endpoints and takes every endpoint;
 * worker B starts once A is delivering. Lease holders are sampled from the table every 50 ms:
 * B must come to hold leases while A still does, on endpoints of its own, and every delivery
 * must arrive exactly once.
 */
describeBackend("postgres", "scale-out: a worker joining a running drain takes its share", () => {
  let db: ScaleDatabase;
  let sink: Server;
  const received = new Map<string, number>();
  const processes: PigeonProcess[] = [];
  beforeAll(async () => {
    db = new ScaleDatabase();
    sink = createServer((req, res) => {
      const id = `${req.url} ${String(req.headers["webhook-id"])}`;
      req.resume();
      req.on("end", () => {
        received.set(id, (received.get(id) ?? 0) + 1);
        setTimeout(() => res.end("ok"), SINK_DELAY_MS);
      });
    });
    await new Promise<void>((resolve) => sink.listen(0, "127.0.0.1", resolve));
  });
  afterAll(async () => {
    for (const p of processes) await p.stop().catch(() => {});
    sink.closeAllConnections();
    await new Promise<void>((resolve) => sink.close(() => resolve()));
    await db.drop();
  });

  it("splits the endpoints once the second worker is up, and delivers everything once", async () => {
    const env = db.env({ PIGEON_ENDPOINT_CONCURRENCY: String(ENDPOINT_CONCURRENCY) });
    const start = async (role: string) => {
      const p = new PigeonProcess(await freePort(), env, ["--role", role, "--database", db.url()]);
      processes.push(p);
      await p.start();
      return p;
    };
    const api = await start("api");
    const client = apiClient(api.baseUrl);
    const port = (sink.address() as AddressInfo).port;
    const appId = await createAppWithEndpoints(
      client,
      { name: "Sharing" },
      Array.from({ length: ENDPOINTS }, (_, i) => ({ url: `http://127.0.0.1:${port}/e${i}` })),
    );
    const production = await produce(client, appId, MESSAGES, (n) => ({
      eventType: "sharing.test",
      payload: { n },
    }));
    expect(production.accepted).toBe(MESSAGES);

    // Who holds unexpired leases on which endpoints, sampled until the backlog is gone.
    const samples: Map<string, Set<string>>[] = [];
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const rows = await db.query<{ locked_by: string; endpoint_id: string }>(
          `SELECT DISTINCT locked_by, endpoint_id FROM "${db.schema}".deliveries
            WHERE status = 'sending' AND next_attempt_at > $1`,
          [Date.now()],
        );
        const byWorker = new Map<string, Set<string>>();
        for (const r of rows)
          byWorker.set(r.locked_by, (byWorker.get(r.locked_by) ?? new Set()).add(r.endpoint_id));
        samples.push(byWorker);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();

    const total = () => [...received.values()].reduce((a, b) => a + b, 0);
    await start("worker");
    await waitUntil(() => total() >= 200, 30_000, "the first worker delivering");
    const joinedAfter = total();
    await start("worker");
    await waitUntil(() => received.size === MESSAGES * ENDPOINTS, 120_000, "every delivery");
    sampling = false;
    await sampler;

    const shared = samples.filter((s) => s.size === 2);
    const split = shared.filter((s) => {
      const [a, b] = [...s.values()] as [Set<string>, Set<string>];
      return [...a].every((ep) => !b.has(ep));
    });
    console.log(
      `sharing test: second worker joined after ${joinedAfter} of ${MESSAGES * ENDPOINTS} deliveries; ` +
        `${samples.length} samples, ${shared.length} with both workers holding leases, ${split.length} of ` +
        `those on disjoint endpoints`,
    );
    expect(shared.length).toBeGreaterThan(0);
    expect(split.length).toBeGreaterThan(0);
    // Exactly once each: nobody was killed, so nothing was sent twice.
    expect([...received.values()].every((n) => n === 1)).toBe(true);
    await expect
      .poll(() => db.deliveryStatuses(), { timeout: 10_000 })
      .toEqual({ succeeded: MESSAGES * ENDPOINTS });
  }, 200_000);
});
