import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeBackend, POSTGRES_TEST_URL, postgresAdmin } from "../helpers/backends.js";
import { freePort, PigeonProcess } from "../helpers/child.js";
import { TEST_ENV, TOKEN } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";
import { createSource, inbox, type PigeonClient, send, signStandard, whsec } from "./helpers.js";

/**
 * The receiving side end to end on PostgreSQL: `pigeon serve --database postgres://…` (built
 * dist/, a fresh schema), a Standard Webhooks source created over the API and forwarded to an
 * application whose endpoint is a loopback sink.
 */
describeBackend("postgres", "inbound gateway on PostgreSQL (pigeon serve)", () => {
  const schema = `pigeon_test_${randomBytes(6).toString("hex")}`;
  let dir: string;
  let sink: Sink;
  let pigeon: PigeonProcess;
  let client: PigeonClient;
  let appId: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-pg-inbound-"));
    sink = await Sink.start();
    const url = new URL(POSTGRES_TEST_URL);
    url.searchParams.set("schema", schema);
    pigeon = new PigeonProcess(await freePort(), { ...TEST_ENV, PIGEON_DATA_DIR: dir }, [
      "--database",
      url.toString(),
    ]);
    await pigeon.start();
    client = {
      baseUrl: pigeon.baseUrl,
      request(method, path, body, headers = {}) {
        const init: RequestInit = {
          method,
          headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
        };
        if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
        return fetch(`${pigeon.baseUrl}${path}`, init);
      },
    };
    const app = await client.request("POST", "/api/v1/app", { name: "Gateway", uid: "gateway" });
    expect(app.status).toBe(201);
    appId = ((await app.json()) as { id: string }).id;
    const endpoint = await client.request("POST", `/api/v1/app/${appId}/endpoint`, { url: sink.url() });
    expect(endpoint.status).toBe(201);
  }, 30_000);

  afterAll(async () => {
    await pigeon?.stop();
    await sink?.close();
    await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts signed requests, forwards a duplicate once, and refuses a bad signature", async () => {
    const secret = whsec();
    const source = await createSource(client, {
      name: "std",
      uid: "std-main",
      provider: "standard-webhooks",
      secrets: [secret],
      options: { forward: { appId } },
    });
    // Providers are given the uid URL; the id URL works too.
    const path = `/in/${source.uid}`;
    const listed = (await (await client.request("GET", "/api/v1/source")).json()) as {
      data: { id: string }[];
    };
    expect(listed.data.map((s) => s.id)).toEqual([source.id]);

    const bodies = [1, 2, 3].map((n) => JSON.stringify({ type: "invoice.paid", data: { n } }));
    for (const [i, body] of bodies.entries()) {
      const res = await send(client, path, body, signStandard(secret, `msg_${i}`, body));
      expect(res.status, await res.text()).toBeGreaterThanOrEqual(200);
      expect(res.status).toBeLessThan(300);
      expect(res.headers.get("pigeon-inbox-status")).toBe("received");
    }
    // The provider re-sends msg_0: acknowledged, stored as a duplicate, not forwarded again.
    const again = await send(client, path, bodies[0]!, signStandard(secret, "msg_0", bodies[0]!));
    expect(again.status).toBeLessThan(300);
    expect(again.headers.get("pigeon-inbox-status")).toBe("duplicate");

    const forged = await send(client, path, bodies[1]!, signStandard(whsec(), "msg_forged", bodies[1]!));
    expect(forged.status).toBe(401);

    await sink.waitFor(3, 15_000);
    await waitUntil(
      async () => (await inbox(client, source.id, "&status=processed")).length === 3,
      15_000,
      "three items processed",
    );
    await new Promise((r) => setTimeout(r, 500));
    expect(sink.received).toHaveLength(3);
    expect(sink.received.map((r) => JSON.parse(r.body.toString()).data.n).sort()).toEqual([1, 2, 3]);

    const items = await inbox(client, source.id);
    expect(items.map((i) => i.status).sort()).toEqual(["duplicate", "processed", "processed", "processed"]);
    const got = (await (await client.request("GET", `/api/v1/source/${source.id}`)).json()) as {
      stats: Record<string, number | string | null>;
    };
    expect(got.stats).toMatchObject({ processed: 3, duplicate: 1 });
    await waitUntil(
      async () =>
        (
          (await (await client.request("GET", `/api/v1/source/${source.id}`)).json()) as {
            stats: Record<string, number | string | null>;
          }
        ).stats.verificationFailures === 1,
      10_000,
      "the verification failure counted",
    );
  }, 60_000);
});
