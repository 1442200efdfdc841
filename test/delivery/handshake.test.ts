import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { echoHandshake, Sink, waitUntil } from "../helpers/sink.js";

describe("registration handshake", () => {
  let pigeon: TestPigeon;
  let sink: Sink;

  beforeEach(async () => {
    pigeon = await startPigeon({ PIGEON_HANDSHAKE: "required", PIGEON_RETRY_SCHEDULE: "200ms,200ms" });
    sink = await Sink.start();
  });
  afterEach(async () => {
    await pigeon.close();
    await sink.close();
  });

  async function endpointStatus(appId: string, id: string): Promise<string> {
    const res = await pigeon.request("GET", `/api/v1/app/${appId}/endpoint/${id}`);
    return ((await res.json()) as { status: string }).status;
  }

  it("holds messages for a pending endpoint and releases them once it echoes the challenge", async () => {
    // The sink refuses the handshake at first.
    sink.behaviour = (_req, res) => {
      res.writeHead(200);
      res.end("not the challenge");
    };
    const app = await pigeon.svix.application.create({ name: "Employees" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    const secret = (await pigeon.svix.endpoint.getSecret(app.id, ep.id)).key;
    expect(await endpointStatus(app.id, ep.id)).toBe("pending");
    await pigeon.svix.message.create(app.id, { eventType: "employee.created", payload: { id: 1 } });
    await pigeon.svix.message.create(app.id, { eventType: "employee.created", payload: { id: 2 } });

    // First try plus two scheduled retries: all verification requests, signed, each with a fresh challenge.
    await sink.waitFor(3, 10_000);
    await new Promise((r) => setTimeout(r, 400));
    expect(sink.received).toHaveLength(3);
    const challenges = new Set<string>();
    for (const req of sink.received) {
      const body = new Webhook(secret).verify(req.body.toString(), req.headers) as {
        type: string;
        data: { challenge: string };
      };
      expect(body.type).toBe("webhook.verification");
      challenges.add(body.data.challenge);
    }
    expect(challenges.size).toBe(3);
    expect(await endpointStatus(app.id, ep.id)).toBe("pending");
    const stats = await pigeon.svix.endpoint.getStats(app.id, ep.id);
    expect(stats.pending).toBe(2);

    // Re-verify through the API, now that the receiver answers correctly.
    sink.behaviour = echoHandshake;
    const res = await pigeon.request("POST", `/api/v1/app/${app.id}/endpoint/${ep.id}/verify`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ verified: true, endpoint: { status: "active" } });
    await sink.waitFor(6, 10_000);
    const delivered = sink.received.slice(4).map((r) => JSON.parse(r.body.toString()).id);
    expect(delivered.sort()).toEqual([1, 2]);
  });

  it("accepts a plain-text echo and verifies on its own after creation", async () => {
    sink.behaviour = (req, res) => {
      const body = JSON.parse(req.body.toString()) as { type?: string; data?: { challenge: string } };
      res.writeHead(200, { "content-type": "text/plain" });
      res.end(body.type === "webhook.verification" ? body.data!.challenge : "ok");
    };
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    await waitUntil(async () => (await endpointStatus(app.id, ep.id)) === "active", 10_000, "verification");
    await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { ok: true } });
    await sink.waitFor(2);
    expect(JSON.parse(sink.received[1]!.body.toString())).toEqual({ ok: true });
  });

  it("can be switched off per application", async () => {
    const res = await pigeon.request("POST", "/api/v1/app", { name: "NoHandshake", handshake: "off" });
    const app = (await res.json()) as { id: string };
    const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    expect(await endpointStatus(app.id, ep.id)).toBe("active");
    await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: { direct: true } });
    await sink.waitFor(1);
    expect(JSON.parse(sink.received[0]!.body.toString())).toEqual({ direct: true });
  });

  it("optional: the endpoint is active at once and a handshake is still attempted", async () => {
    sink.behaviour = echoHandshake;
    const res = await pigeon.request("POST", "/api/v1/app", { name: "Optional", handshake: "optional" });
    const app = (await res.json()) as { id: string };
    const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    expect(await endpointStatus(app.id, ep.id)).toBe("active");
    await waitUntil(async () => {
      const r = await pigeon.request("GET", `/api/v1/app/${app.id}/endpoint/${ep.id}`);
      return ((await r.json()) as { verifiedAt: string | null }).verifiedAt !== null;
    });
  });

  it("a changed URL must verify again", async () => {
    sink.behaviour = echoHandshake;
    const app = await pigeon.svix.application.create({ name: "A" });
    const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    await waitUntil(async () => (await endpointStatus(app.id, ep.id)) === "active");
    const other = await Sink.start((_req, res) => {
      res.writeHead(200);
      res.end("nope");
    });
    try {
      await pigeon.svix.endpoint.patch(app.id, ep.id, { url: other.url() });
      expect(await endpointStatus(app.id, ep.id)).toBe("pending");
      await pigeon.svix.message.create(app.id, { eventType: "x.y", payload: {} });
      await other.waitFor(1);
      await new Promise((r) => setTimeout(r, 300));
      // Only verification requests reached the new URL: the message is held.
      expect(other.received.every((r) => JSON.parse(r.body.toString()).type === "webhook.verification")).toBe(
        true,
      );
    } finally {
      await other.close();
    }
  });
});
