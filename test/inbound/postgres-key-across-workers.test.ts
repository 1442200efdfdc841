import { randomBytes } from "node:crypto";
import { afterAll, expect, it } from "vitest";
import type { RawRequest } from "../../src/inbound/intake.js";
import { InboundService } from "../../src/inbound/service.js";
import { PostgresInboxStore } from "../../src/inbound/store/postgres-inbox-store.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import { describeBackend, POSTGRES_TEST_URL, postgresAdmin } from "../helpers/backends.js";
import { waitUntil } from "../helpers/sink.js";

/**
 * Two workers on one PostgreSQL database never run two items of one ordering key at once, also
 * when each receives one of them: a worker hands an item over at its insert only if no other
 * worker can be running its key.
 */
describeBackend("postgres", "ordering keys across workers", () => {
  const schema = `pigeon_test_${randomBytes(6).toString("hex")}`;
  const stores: PostgresStore[] = [];
  const services: InboundService[] = [];
  afterAll(async () => {
    for (const s of services) await s.stop();
    for (const s of stores) await s.close();
    await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  });

  async function worker(): Promise<InboundService> {
    const store = await PostgresStore.open(POSTGRES_TEST_URL, { schema, poolSize: 4 });
    stores.push(store);
    const svc = new InboundService(
      { inbox: new PostgresInboxStore(store.database), clock: { now: () => Date.now() } },
      { maxBodyBytes: 1e6, leaseMs: 60_000, pollIntervalMs: 200, globalConcurrency: 8 },
    );
    services.push(svc);
    return svc;
  }

  const raw = (body: Record<string, unknown>): RawRequest => ({
    method: "POST",
    target: "/in/x",
    headers: { "content-type": "application/json", host: "localhost" },
    body: Buffer.from(JSON.stringify(body)),
  });

  it("runs the second item of a key only after the first, though another worker received it", async () => {
    const a = await worker();
    const b = await worker();
    const source = await a.sources.create({
      name: "ordered",
      provider: "none",
      secrets: [],
      options: { orderingKey: { pointer: "/key" }, eventTime: { pointer: "/t" } },
    });
    let running = 0;
    let mostRunning = 0;
    const handled: string[] = [];
    const handler = async (e: { json(): unknown }) => {
      running++;
      mostRunning = Math.max(mostRunning, running);
      await new Promise((resolve) => setTimeout(resolve, 300));
      handled.push((e.json() as { tag: string }).tag);
      running--;
    };
    a.on("*", handler);
    b.on("*", handler);
    await a.start();
    await b.start();
    const sourceAtB = await b.sources.resolve(source.id);
    expect((await a.intake.receive(source, raw({ tag: "K1", key: "k", t: 1000 }))).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect((await b.intake.receive(sourceAtB!, raw({ tag: "K2", key: "k", t: 2000 }))).status).toBe(200);
    await waitUntil(async () => handled.length === 2, 10_000, "both items handled");
    expect(handled).toEqual(["K1", "K2"]);
    expect(mostRunning).toBe(1);
  });
});
