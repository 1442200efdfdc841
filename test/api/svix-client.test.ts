import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";

/** The official svix 1.x client drives Pigeon; a loopback sink checks every delivery's signature. */
describe("svix client against pigeon serve", () => {
  let pigeon: TestPigeon;
  let sink: Sink;

  beforeEach(async () => {
    pigeon = await startPigeon();
    sink = await Sink.start();
  });
  afterEach(async () => {
    await pigeon.close();
    await sink.close();
  });

  it("runs app → event type → endpoint → message → attempts → rotate → recover", async () => {
    const { svix } = pigeon;
    const app = await svix.application.create({ name: "Employees", uid: "employees" });
    expect(app.id).toMatch(/^app_/);
    expect((await svix.application.get("employees")).id).toBe(app.id);

    await svix.eventType.create({
      name: "employee.created",
      description: "A new employee",
      schemas: { "1": { type: "object", required: ["name"], properties: { name: { type: "string" } } } },
    });
    const types = await svix.eventType.list();
    expect(types.data.map((t) => t.name)).toContain("employee.created");

    const endpoint = await svix.endpoint.create(app.id, {
      url: sink.url(),
      filterTypes: ["employee.*"],
      rateLimit: 100,
      uid: "bank-1",
      metadata: { team: "banking" },
    });
    expect(endpoint.filterTypes).toEqual(["employee.*"]);
    expect(endpoint.rateLimit).toBe(100);
    expect((endpoint as unknown as { throttleRate: number }).throttleRate).toBe(100);
    const secret = (await svix.endpoint.getSecret(app.id, endpoint.id)).key;
    expect(secret).toMatch(/^whsec_/);

    const msg = await svix.message.create(app.id, {
      eventType: "employee.created",
      eventId: "evt-1",
      payload: { name: "Ann Lee", email: "ann@example.test" },
    });
    await sink.waitFor(1);
    const first = sink.received[0]!;
    const verified = new Webhook(secret).verify(first.body.toString(), first.headers) as { name: string };
    expect(verified.name).toBe("Ann Lee");
    expect(first.headers["webhook-id"]).toBe(msg.id);

    // Messages and attempts through the API.
    expect((await svix.message.get(app.id, msg.id)).payload).toEqual({
      name: "Ann Lee",
      email: "ann@example.test",
    });
    expect((await svix.message.get(app.id, "evt-1")).id).toBe(msg.id);
    await waitUntil(async () => (await svix.messageAttempt.listByMsg(app.id, msg.id)).data.length === 1);
    const attempts = await svix.messageAttempt.listByMsg(app.id, msg.id);
    expect(attempts.data[0]).toMatchObject({
      status: 0,
      responseStatusCode: 200,
      endpointId: endpoint.id,
      msgId: msg.id,
    });
    const byEndpoint = await svix.messageAttempt.listByEndpoint(app.id, endpoint.id);
    expect(byEndpoint.data.map((a) => a.msgId)).toEqual([msg.id]);

    // Rotation: during the grace period old and new secrets both sign.
    await svix.endpoint.rotateSecret(app.id, endpoint.id, {});
    const newSecret = (await svix.endpoint.getSecret(app.id, endpoint.id)).key;
    expect(newSecret).not.toBe(secret);
    await svix.message.create(app.id, { eventType: "employee.created", payload: { name: "Bo" } });
    await sink.waitFor(2);
    const second = sink.received[1]!;
    expect(() => new Webhook(secret).verify(second.body.toString(), second.headers)).not.toThrow();
    expect(() => new Webhook(newSecret).verify(second.body.toString(), second.headers)).not.toThrow();

    // Recover: failures since a time are sent again.
    sink.behaviour = (_req, res) => {
      res.writeHead(500);
      res.end("down");
    };
    const failing = await svix.message.create(app.id, {
      eventType: "employee.created",
      payload: { name: "Cy" },
    });
    await waitUntil(
      async () => (await svix.endpoint.getStats(app.id, endpoint.id)).fail === 1,
      10_000,
      "the message to fail for good",
    );
    const failedAttempts = await svix.messageAttempt.listByMsg(app.id, failing.id);
    expect(failedAttempts.data).toHaveLength(4);
    expect(failedAttempts.data.every((a) => a.status === 2 && a.responseStatusCode === 500)).toBe(true);
    sink.behaviour = (_req, res) => {
      res.writeHead(204);
      res.end();
    };
    const before = sink.received.length;
    await svix.endpoint.recover(app.id, endpoint.id, { since: new Date(Date.now() - 60_000) });
    await sink.waitFor(before + 1);
    await waitUntil(async () => (await svix.endpoint.getStats(app.id, endpoint.id)).success === 3);
    const recovered = await svix.messageAttempt.listByMsg(app.id, failing.id);
    expect(recovered.data[0]).toMatchObject({ status: 0, triggerType: 1 });

    // Resend one message by hand.
    await svix.messageAttempt.resend(app.id, msg.id, endpoint.id);
    await waitUntil(async () => (await svix.messageAttempt.listByMsg(app.id, msg.id)).data.length === 2);
    expect(sink.received.filter((r) => r.headers["webhook-id"] === msg.id)).toHaveLength(2);

    // Lists paginate the Svix way.
    const page1 = await svix.message.list(app.id, { limit: 2 });
    expect(page1.data).toHaveLength(2);
    expect(page1.done).toBe(false);
    const page2 = await svix.message.list(app.id, { limit: 2, iterator: page1.iterator });
    expect(page2.data).toHaveLength(1);
    expect(page2.done).toBe(true);
  });

  it("refuses a payload that violates the event type's schema with 422", async () => {
    const { svix } = pigeon;
    const app = await svix.application.create({ name: "A" });
    await svix.eventType.create({
      name: "employee.created",
      description: "x",
      schemas: { "1": { type: "object", required: ["name"], properties: { name: { type: "string" } } } },
    });
    await expect(
      svix.message.create(app.id, { eventType: "employee.created", payload: { name: 42 } }),
    ).rejects.toMatchObject({
      code: 422,
    });
    const res = await pigeon.request("POST", `/api/v1/app/${app.id}/msg`, {
      eventType: "employee.created",
      payload: {},
    });
    expect(res.status).toBe(422);
    const body = (await res.json()) as { detail: { loc: string[] }[] };
    expect(body.detail[0]!.loc).toEqual(["body", "payload", "name"]);
  });

  it("delivers only to endpoints whose filter and channels match", async () => {
    const { svix } = pigeon;
    const other = await Sink.start();
    try {
      const app = await svix.application.create({ name: "A" });
      await svix.endpoint.create(app.id, { url: sink.url(), filterTypes: ["employee.*"] });
      await svix.endpoint.create(app.id, { url: other.url(), channels: ["eu"] });
      await svix.message.create(app.id, { eventType: "invoice.paid", payload: { n: 1 } });
      await svix.message.create(app.id, {
        eventType: "employee.updated",
        payload: { n: 2 },
        channels: ["eu"],
      });
      await sink.waitFor(1);
      await other.waitFor(1);
      await new Promise((r) => setTimeout(r, 200));
      expect(sink.received.map((r) => JSON.parse(r.body.toString()).n)).toEqual([2]);
      expect(other.received.map((r) => JSON.parse(r.body.toString()).n)).toEqual([2]);
    } finally {
      await other.close();
    }
  });

  it("replays the first response for a repeated idempotency-key", async () => {
    const app = await pigeon.svix.application.create({ name: "A" });
    await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
    const send = () =>
      pigeon.request(
        "POST",
        `/api/v1/app/${app.id}/msg`,
        { eventType: "x.y", payload: { a: 1 } },
        { "idempotency-key": "k-1" },
      );
    const a = (await (await send()).json()) as { id: string };
    const b = (await (await send()).json()) as { id: string };
    expect(b.id).toBe(a.id);
    await sink.waitFor(1);
    await new Promise((r) => setTimeout(r, 200));
    expect(sink.received).toHaveLength(1);
  });

  it("serves its OpenAPI document, generated from the route schemas", async () => {
    const res = await fetch(`${pigeon.baseUrl}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { paths: Record<string, Record<string, { requestBody?: unknown }>> };
    expect(Object.keys(doc.paths)).toContain("/api/v1/app/{app_id}/msg");
    const create = doc.paths["/api/v1/app/{app_id}/endpoint"]!.post as {
      requestBody: { content: { "application/json": { schema: { properties: Record<string, unknown> } } } };
    };
    const props = create.requestBody.content["application/json"].schema.properties;
    expect(props).toHaveProperty("filterTypes");
    expect(props).toHaveProperty("eventTypes");
    expect(props).toHaveProperty("rateLimit");
    expect(props).toHaveProperty("throttleRate");
    await pigeon.svix.health.get();
  });
});
