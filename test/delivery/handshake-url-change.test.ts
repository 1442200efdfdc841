import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, expect, it } from "vitest";
import { type BackendName, describeBackends, POSTGRES_TEST_URL, postgresAdmin } from "../helpers/backends.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { type ReceivedRequest, Sink, type SinkBehaviour, waitUntil } from "../helpers/sink.js";

// The registration handshake's guarantee, end to end over loopback HTTP: no payload is ever sent
// to a URL that has not answered the challenge, also when the URL changes while deliveries are
// queued or while the old URL's handshake is still in flight, on both backends.

/** A Pigeon with the handshake required on `backend` (a private PostgreSQL schema, dropped after). */
async function startRequired(
  backend: BackendName,
  env: Record<string, string>,
): Promise<{ pigeon: TestPigeon; cleanup: () => Promise<void> }> {
  const base = { PIGEON_HANDSHAKE: "required", ...env };
  if (backend === "sqlite") {
    const pigeon = await startPigeon(base);
    return { pigeon, cleanup: () => pigeon.close() };
  }
  const schema = `pigeon_test_${randomBytes(6).toString("hex")}`;
  const url = new URL(POSTGRES_TEST_URL);
  url.searchParams.set("schema", schema);
  const pigeon = await startPigeon({ ...base, PIGEON_DATABASE_URL: url.toString() });
  return {
    pigeon,
    cleanup: async () => {
      await pigeon.close();
      await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}

function isVerification(req: ReceivedRequest): boolean {
  return (JSON.parse(req.body.toString()) as { type?: string }).type === "webhook.verification";
}

/** Echoes the challenge (after `delayMs`) when `verifies`, refuses it with a 403 otherwise; 200/`status` to payloads. */
function receiver(opts: { verifies: boolean; delayMs?: number; payloadStatus?: number }): SinkBehaviour {
  return (req, res) => {
    const body = JSON.parse(req.body.toString()) as { type?: string; data?: { challenge?: string } };
    if (body.type === "webhook.verification") {
      const answer = () => {
        if (!opts.verifies) {
          res.writeHead(403);
          res.end("I never asked for webhooks");
          return;
        }
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ challenge: body.data?.challenge }));
      };
      if (opts.delayMs) setTimeout(answer, opts.delayMs);
      else answer();
      return;
    }
    res.writeHead(opts.payloadStatus ?? 200);
    res.end("x");
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeBackends("handshake: a changed URL gets nothing before it answers", (backend) => {
  let pigeon: TestPigeon;
  let cleanup: () => Promise<void>;
  let oldUrl: Sink;
  let newUrl: Sink;

  beforeEach(async () => {
    ({ pigeon, cleanup } = await startRequired(backend, { PIGEON_RETRY_SCHEDULE: "500ms,500ms,500ms" }));
  });
  afterEach(async () => {
    await cleanup();
    await oldUrl?.close();
    await newUrl?.close();
  });

  async function getEndpoint(appId: string, id: string) {
    const res = await pigeon.request("GET", `/api/v1/app/${appId}/endpoint/${id}`);
    return (await res.json()) as { status: string; url: string; verifiedAt: string | null };
  }

  it("holds a delivery in flight at the URL change: its failure's retry never reaches the new URL", async () => {
    // The old URL keeps the payload's request open until the URL has changed, then fails it.
    let failInFlight: () => void = () => {};
    const inFlight = new Promise<void>((resolve) => {
      failInFlight = resolve;
    });
    oldUrl = await Sink.start((req, res) => {
      if (isVerification(req)) {
        receiver({ verifies: true })(req, res);
        return;
      }
      void inFlight.then(() => {
        res.writeHead(500);
        res.end("failed");
      });
    });
    newUrl = await Sink.start(receiver({ verifies: false }));
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: oldUrl.url() });
    await waitUntil(async () => (await getEndpoint(app.id, ep.id)).status === "active", 10_000, "verified");
    const msg = await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { secret: 2 } });
    await waitUntil(async () => oldUrl.received.some((r) => !isVerification(r)), 10_000, "the send");

    await pigeon.svix.endpoint.patch(app.id, ep.id, { url: newUrl.url() });
    failInFlight();
    await newUrl.waitFor(1, 10_000); // challenged, and refused
    await sleep(1_500); // past the failure's 500 ms retry
    expect(newUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
    const row = await pigeon.engine.store.getDelivery(msg.id, ep.id);
    expect(row?.status).toBe("held");
    expect(row?.attempts).toBe(1); // the failed attempt is recorded
  });

  it("holds a queued retry, a resend and a recover for the unverified new URL", async () => {
    oldUrl = await Sink.start(receiver({ verifies: true, payloadStatus: 500 }));
    newUrl = await Sink.start(receiver({ verifies: false }));
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: oldUrl.url() });
    await waitUntil(async () => (await getEndpoint(app.id, ep.id)).status === "active", 10_000, "verified");
    const msg = await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { secret: 1 } });
    // The first try fails at the old URL; its retry waits 500 ms (recorded: the row is due again,
    // not in flight, which the URL change could not recall).
    await waitUntil(
      async () => {
        const d = await pigeon.engine.store.getDelivery(msg.id, ep.id);
        return d?.status === "pending" && d.attempts === 1;
      },
      10_000,
      "the retry to be queued",
    );

    await pigeon.svix.endpoint.patch(app.id, ep.id, { url: newUrl.url() });
    expect((await getEndpoint(app.id, ep.id)).status).toBe("pending");
    await newUrl.waitFor(1, 10_000); // the new URL is challenged (and refuses)
    await sleep(1_000); // well past the retry's due time
    expect(newUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
    const held = await pigeon.engine.store.getDelivery(msg.id, ep.id);
    expect(held?.status).toBe("held");

    // A resend to the still-pending endpoint is kept, not sent.
    const resend = await pigeon.request(
      "POST",
      `/api/v1/app/${app.id}/msg/${msg.id}/endpoint/${ep.id}/resend`,
    );
    expect(resend.status).toBe(202);
    await sleep(500);
    expect(newUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
    expect((await pigeon.engine.store.getDelivery(msg.id, ep.id))?.status).toBe("held");
    expect(await pigeon.svix.endpoint.getStats(app.id, ep.id)).toMatchObject({ pending: 1, sending: 0 });
  });

  it("recover of a pending endpoint holds the failed deliveries it re-queues", async () => {
    oldUrl = await Sink.start(receiver({ verifies: true, payloadStatus: 500 }));
    newUrl = await Sink.start(receiver({ verifies: false }));
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: oldUrl.url() });
    await waitUntil(async () => (await getEndpoint(app.id, ep.id)).status === "active", 10_000, "verified");
    const since = new Date(Date.now() - 1_000).toISOString();
    const msg = await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { secret: 2 } });
    // Four tries (the first and three retries 500 ms apart) fail at the old URL: the delivery fails.
    await waitUntil(
      async () => (await pigeon.engine.store.getDelivery(msg.id, ep.id))?.status === "failed",
      10_000,
      "the delivery to fail",
    );

    await pigeon.svix.endpoint.patch(app.id, ep.id, { url: newUrl.url() });
    const res = await pigeon.request("POST", `/api/v1/app/${app.id}/endpoint/${ep.id}/recover`, { since });
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ recovered: 1 });
    await sleep(500);
    expect(newUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
    expect((await pigeon.engine.store.getDelivery(msg.id, ep.id))?.status).toBe("held");
  });

  it("the old URL's late answer does not verify the new URL", async () => {
    oldUrl = await Sink.start(receiver({ verifies: true, delayMs: 500 }));
    newUrl = await Sink.start(receiver({ verifies: false }));
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: oldUrl.url() });
    await oldUrl.waitFor(1, 10_000); // the old URL's handshake is in flight (answered in 500 ms)
    await pigeon.svix.endpoint.patch(app.id, ep.id, { url: newUrl.url() });
    await sleep(800); // the old URL has answered by now

    const after = await getEndpoint(app.id, ep.id);
    expect(after).toMatchObject({ url: newUrl.url(), status: "pending", verifiedAt: null });
    // The new URL was challenged itself, not refused as "already in progress".
    expect(newUrl.received.filter(isVerification).length).toBeGreaterThanOrEqual(1);
    await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { secret: 3 } });
    await sleep(300);
    expect(newUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
    expect(oldUrl.received.filter((r) => !isVerification(r))).toHaveLength(0);
  });

  it("a new URL that answers is verified even while the old URL's handshake was in flight", async () => {
    oldUrl = await Sink.start(receiver({ verifies: true, delayMs: 500 }));
    newUrl = await Sink.start(receiver({ verifies: true }));
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: oldUrl.url() });
    await oldUrl.waitFor(1, 10_000);
    await pigeon.svix.endpoint.patch(app.id, ep.id, { url: newUrl.url() });
    await waitUntil(async () => (await getEndpoint(app.id, ep.id)).status === "active", 10_000, "verified");
    await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { ok: true } });
    await waitUntil(() => newUrl.received.some((r) => !isVerification(r)), 10_000, "the payload");
    // Every payload the new URL got came after it answered its own challenge.
    const firstPayload = newUrl.received.findIndex((r) => !isVerification(r));
    expect(newUrl.received.slice(0, firstPayload).some(isVerification)).toBe(true);
    await sleep(700); // the old URL's late answer changes nothing
    expect(await getEndpoint(app.id, ep.id)).toMatchObject({ url: newUrl.url(), status: "active" });
  });
});
