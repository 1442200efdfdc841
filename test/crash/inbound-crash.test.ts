import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Agent, request } from "undici";
import { afterAll, describe, expect, it } from "vitest";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { TOKEN } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { signStandard, whsec } from "../inbound/helpers.js";

const EVENTS = 5_000;
const KILLS = 3;
const SENDERS = 32;
/**
 * The source's cap. What a kill can catch handled but not yet recorded is bounded by twice the
 * cap: the running handlers plus at most one cap's worth waiting for their outcome's commit.
 */
const SOURCE_CONCURRENCY = 16;

/**
 * The handler module `pigeon serve` loads (PIGEON_INBOUND_HANDLER): it appends one line per call
 * to a log. appendFileSync goes to the kernel before the call returns, so a SIGKILL loses no line.
 */
const HANDLER_MODULE = `
import { appendFileSync } from "node:fs";
export default function register(inbound) {
  inbound.on("*", (event) => {
    appendFileSync(process.env.HANDLED_LOG, event.id + " " + event.eventId + " " + process.pid + "\\n");
  });
}
`;

/**
 * 5,000 signed webhooks while `pigeon serve` is SIGKILLed three times and restarted. A request
 * without an answer is sent again (same event id, fresh signature) until it gets a 2xx. In the end
 * every acknowledged event reached the handler under exactly one inbox item (re-sends are
 * duplicates), and an item was handed over again only if a kill caught it in flight.
 */
describe("crash safety of receiving", () => {
  const dir = mkdtempSync(join(tmpdir(), "pigeon-inbound-crash-"));
  const log = join(dir, "handled.log");
  const agent = new Agent({ connections: SENDERS, keepAliveTimeout: 1_000 });
  afterAll(async () => {
    await agent.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("hands every acknowledged request to the handler once across three SIGKILLs", async () => {
    const handlerPath = join(dir, "handler.mjs");
    writeFileSync(handlerPath, HANDLER_MODULE);
    const pigeon = new PigeonProcess(await freePort(), {
      PIGEON_DATA_DIR: join(dir, "data"),
      PIGEON_AUTH_TOKEN: TOKEN,
      PIGEON_LEASE: "2s",
      PIGEON_POLL_INTERVAL: "100ms",
      PIGEON_INBOUND_HANDLER: handlerPath,
      HANDLED_LOG: log,
    });
    await pigeon.start();
    const secret = whsec();
    const created = await fetch(`${pigeon.baseUrl}/api/v1/source`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({
        name: "crash",
        provider: "standard-webhooks",
        secrets: [secret],
        // A short handler timeout keeps the lease (twice the timeout, at least PIGEON_LEASE) short.
        options: { concurrency: SOURCE_CONCURRENCY, handlerTimeoutMs: 500 },
      }),
    });
    expect(created.status).toBe(201);
    const source = (await created.json()) as { id: string; ingestPath: string };

    let acked = 0;
    let resends = 0;
    let duplicates = 0;
    let next = 0;
    const send = async () => {
      while (next < EVENTS) {
        const n = next++;
        const body = JSON.stringify({ type: "crash.test", data: { n } });
        for (let attempt = 0; ; attempt++) {
          if (attempt > 0) resends++;
          try {
            const res = await request(`${pigeon.baseUrl}${source.ingestPath}`, {
              method: "POST",
              body,
              headers: signStandard(secret, `msg_${n}`, body),
              dispatcher: agent,
            });
            await res.body.dump();
            if (res.statusCode === 200) {
              if (res.headers["pigeon-inbox-status"] === "duplicate") duplicates++;
              acked++;
              break;
            }
            if (res.statusCode !== 503) throw new Error(`unexpected ${res.statusCode}`);
          } catch (error) {
            if (error instanceof Error && error.message.startsWith("unexpected")) throw error;
            // No answer (killed mid-request, or not listening yet): send it again.
          }
          await new Promise((r) => setTimeout(r, 20));
        }
      }
    };
    const senders = Promise.all(Array.from({ length: SENDERS }, send));

    for (let k = 0; k < KILLS; k++) {
      const threshold = EVENTS * (0.15 + 0.25 * k + Math.random() * 0.1);
      await waitUntil(() => acked >= threshold, 60_000, `${Math.round(threshold)} acks before kill ${k + 1}`);
      await pigeon.kill();
      await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      await pigeon.start();
    }
    await senders;
    expect(acked).toBe(EVENTS);

    // Providers also retry what was acknowledged (their side timed out): such copies are
    // acknowledged as duplicates and never handed on.
    const retried = Array.from({ length: 250 }, () => Math.floor(Math.random() * EVENTS));
    const retryStatuses = await Promise.all(
      retried.map(async (n) => {
        const body = JSON.stringify({ type: "crash.test", data: { n } });
        const res = await request(`${pigeon.baseUrl}${source.ingestPath}`, {
          method: "POST",
          body,
          headers: signStandard(secret, `msg_${n}`, body),
          dispatcher: agent,
        });
        await res.body.dump();
        return `${res.statusCode} ${String(res.headers["pigeon-inbox-status"])}`;
      }),
    );
    expect(new Set(retryStatuses)).toEqual(new Set(["200 duplicate"]));

    const readLog = () =>
      existsSync(log)
        ? readFileSync(log, "utf8")
            .split("\n")
            .filter(Boolean)
            .map((line) => line.split(" ") as [string, string, string])
        : [];
    const stats = async () =>
      (
        (await (
          await fetch(`${pigeon.baseUrl}/api/v1/source/${source.id}`, {
            headers: { authorization: `Bearer ${TOKEN}` },
          })
        ).json()) as { stats: Record<string, number> }
      ).stats;
    // Done when the inbox says so: items a kill caught in flight are handed over again only once
    // their lease runs out, after the log may already name every event.
    await waitUntil(
      async () => {
        const s = await stats();
        return s.processed === EVENTS && s.received === 0 && s.processing === 0;
      },
      60_000,
      "every item processed",
    );
    await pigeon.stop();

    const lines = readLog();
    const itemsByEvent = new Map<string, Set<string>>();
    for (const [itemId, eventId] of lines)
      itemsByEvent.set(eventId, (itemsByEvent.get(eventId) ?? new Set()).add(itemId));
    const expected = Array.from({ length: EVENTS }, (_, n) => `msg_${n}`);
    expect([...itemsByEvent.keys()].sort()).toEqual(expected.sort());
    // One inbox item per event: a re-sent request was recognised as a duplicate, never handled as new.
    const split = [...itemsByEvent.entries()].filter(([, items]) => items.size !== 1);
    expect(split).toEqual([]);
    // Handing an item over again happens only to what a kill caught in flight.
    const again = lines.length - itemsByEvent.size;
    expect(again).toBeLessThanOrEqual(KILLS * 2 * SOURCE_CONCURRENCY);

    // Restart once more: the final state was on disk, and nothing is handed over again.
    await pigeon.start();
    const final = await stats();
    await new Promise((r) => setTimeout(r, 500));
    await pigeon.stop();
    expect(readLog()).toHaveLength(lines.length);
    expect(final).toMatchObject({ processed: EVENTS, received: 0, processing: 0, failed: 0, stale: 0 });
    expect(final.duplicate).toBeGreaterThanOrEqual(duplicates + retried.length);
    console.log(
      `inbound crash test: ${KILLS} kills, ${resends} re-sent requests, ${final.duplicate} recorded as duplicates, ` +
        `${again} handler calls repeated for items in flight at a kill, of ${EVENTS} events`,
    );
  }, 120_000);
});
