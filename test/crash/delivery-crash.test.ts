import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { TOKEN } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";

const MESSAGES = 5_000;
const ENDPOINTS = 5;
const KILLS = 3;
const CONCURRENCY = 64;

/**
 * 5,000 messages to 5 endpoints while `pigeon serve` is SIGKILLed at random points and restarted:
 * every accepted message must reach every endpoint, and duplicates may only come from what was in
 * flight at a kill (at most the claimed-but-unrecorded deliveries: 2 × PIGEON_CONCURRENCY per kill).
 */
describe("crash safety of delivery", () => {
  const dir = mkdtempSync(join(tmpdir(), "pigeon-crash-"));
  const sinks: Sink[] = [];
  afterAll(async () => {
    for (const sink of sinks) await sink.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses nothing across three SIGKILLs", async () => {
    for (let i = 0; i < ENDPOINTS; i++) sinks.push(await Sink.start());
    const pigeon = new PigeonProcess(await freePort(), {
      PIGEON_DATA_DIR: dir,
      PIGEON_AUTH_TOKEN: TOKEN,
      PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8",
      PIGEON_HANDSHAKE: "off",
      PIGEON_RETRY_SCHEDULE: "200ms,500ms,1s,2s,2s,2s,2s",
      PIGEON_RETRY_JITTER: "0",
      PIGEON_LEASE: "2s",
      PIGEON_CONCURRENCY: String(CONCURRENCY),
    });
    await pigeon.start();
    const api = async (method: string, path: string, body?: unknown) =>
      fetch(`${pigeon.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const app = (await (await api("POST", "/api/v1/app", { name: "Crash", uid: "crash" })).json()) as {
      id: string;
    };
    for (const sink of sinks)
      expect((await api("POST", `/api/v1/app/${app.id}/endpoint`, { url: sink.url() })).status).toBe(201);

    // Producer: each message is retried with the same eventId until Pigeon answers 202 (new) or
    // 409 (accepted before a kill, its answer lost).
    let accepted = 0;
    let next = 0;
    const produce = async () => {
      while (next < MESSAGES) {
        const n = next++;
        for (;;) {
          try {
            const res = await api("POST", `/api/v1/app/${app.id}/msg`, {
              eventType: "crash.test",
              eventId: `m-${n}`,
              payload: { n },
            });
            if (res.status === 202 || res.status === 409) {
              accepted++;
              break;
            }
            throw new Error(`unexpected ${res.status}: ${await res.text()}`);
          } catch (error) {
            if (error instanceof Error && error.message.startsWith("unexpected")) throw error;
            await new Promise((r) => setTimeout(r, 50));
          }
        }
      }
    };
    const producers = Promise.all(Array.from({ length: 16 }, produce));

    // Killer: at random points spread over the run, kill and restart.
    const total = MESSAGES * ENDPOINTS;
    const received = () => sinks.reduce((sum, s) => sum + s.received.length, 0);
    for (let k = 0; k < KILLS; k++) {
      const threshold = total * (0.15 + 0.25 * k + Math.random() * 0.1);
      await waitUntil(() => received() >= threshold, 60_000, `${threshold} deliveries before kill ${k + 1}`);
      await pigeon.kill();
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      await pigeon.start();
    }
    await producers;
    expect(accepted).toBe(MESSAGES);

    const uniqueAt = (sink: Sink) =>
      new Set(sink.received.map((r) => (JSON.parse(r.body.toString()) as { n: number }).n));
    await waitUntil(
      () => sinks.every((s) => uniqueAt(s).size === MESSAGES),
      60_000,
      "every message at every endpoint",
    );
    await pigeon.stop();

    let duplicates = 0;
    for (const sink of sinks) {
      const ids = new Set(uniqueAt(sink));
      expect(ids.size).toBe(MESSAGES);
      duplicates += sink.received.length - ids.size;
      // The same message is always sent with the same webhook-id, so receivers can de-duplicate.
      const idsByN = new Map<number, Set<string>>();
      for (const r of sink.received) {
        const n = (JSON.parse(r.body.toString()) as { n: number }).n;
        idsByN.set(n, (idsByN.get(n) ?? new Set()).add(r.headers["webhook-id"]!));
      }
      expect([...idsByN.values()].every((set) => set.size === 1)).toBe(true);
    }
    console.log(`crash test: ${KILLS} kills, ${duplicates} duplicate deliveries of ${total}`);
    expect(duplicates).toBeLessThanOrEqual(KILLS * 2 * CONCURRENCY);
  }, 180_000);
});
