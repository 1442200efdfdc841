import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Forwarder } from "../../src/inbound/forwarder.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";
import { createSource, inbox, send, signGithub } from "./helpers.js";

describe("gateway mode: forwarding inbound webhooks through the delivery engine", () => {
  let p: TestPigeon;
  let sink: Sink;
  let appId: string;
  beforeAll(async () => {
    p = await startPigeon();
    sink = await Sink.start();
    const app = (await (
      await p.request("POST", "/api/v1/app", { name: "Gateway", uid: "gateway" })
    ).json()) as { id: string };
    appId = app.id;
    const endpoint = await p.request("POST", `/api/v1/app/${appId}/endpoint`, { url: sink.url() });
    expect(endpoint.status).toBe(201);
  });
  afterAll(async () => {
    await sink.close();
    await p.close();
  });

  it("publishes each verified item as a signed message with retries and attempts", async () => {
    const secret = "gh-gateway";
    const source = await createSource(p, {
      name: "gh",
      provider: "github",
      secrets: [secret],
      options: { forward: { appId: "gateway" } },
    });
    const body = JSON.stringify({ action: "opened", number: 7 });
    const res = await send(
      p,
      source.ingestPath,
      body,
      signGithub(secret, body, "delivery-1", "pull_request"),
    );
    expect(res.status).toBe(200);
    const itemId = res.headers.get("pigeon-inbox-item")!;

    await sink.waitFor(1, 10_000);
    const delivered = sink.received[0]!;
    expect(JSON.parse(delivered.body.toString())).toEqual({ action: "opened", number: 7 });
    expect(delivered.headers["webhook-signature"]).toMatch(/^v1,/);
    // The message carries the item id as its eventId, so a re-run of the item cannot publish twice.
    const msg = (await (await p.request("GET", `/api/v1/app/${appId}/msg/${itemId}`)).json()) as {
      eventType: string;
      eventId: string;
      id: string;
    };
    expect(msg).toMatchObject({ eventType: "pull_request", eventId: itemId });
    expect(delivered.headers["webhook-id"]).toBe(msg.id);
    await waitUntil(
      async () => (await inbox(p, source.id))[0]?.status === "processed",
      10_000,
      "the item processed",
    );

    // A duplicate delivery of the same GitHub event is acknowledged and not forwarded again.
    const again = await send(
      p,
      source.ingestPath,
      body,
      signGithub(secret, body, "delivery-1", "pull_request"),
    );
    expect(again.headers.get("pigeon-inbox-status")).toBe("duplicate");
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.received).toHaveLength(1);
  });

  it("publishes an item once even when it is handed on twice (crash between publish and record)", async () => {
    const source = await p.engine.inbound.sources.resolve(
      (
        await createSource(p, {
          name: "twice",
          provider: "none",
          secrets: [],
          options: { forward: { appId, eventType: "relay.twice" } },
        })
      ).id,
    );
    const item = {
      id: "in_01TESTTESTTESTTESTTESTTEST",
      sourceId: source!.id,
      status: "processing" as const,
      eventId: null,
      duplicateOf: null,
      eventType: null,
      eventTime: null,
      orderingKey: null,
      method: "POST",
      path: "/in/x",
      query: "",
      headers: {},
      body: Buffer.from("a=1&b=two"),
      contentType: "application/x-www-form-urlencoded",
      bodyKind: "form" as const,
      attempts: 0,
      nextAttemptAt: null,
      lastError: null,
      stale: false,
      receivedAt: Date.now(),
      processedAt: null,
      updatedAt: Date.now(),
    };
    const forwarder = new Forwarder(p.engine.store, p.engine.publisher);
    const before = sink.received.length;
    await forwarder.forward(item, source!, { appId, eventType: "relay.twice" });
    await forwarder.forward(item, source!, { appId, eventType: "relay.twice" });
    await sink.waitFor(before + 1, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.received.length).toBe(before + 1);
    // A form body is wrapped, since a message payload is a JSON object.
    expect(JSON.parse(sink.received.at(-1)!.body.toString())).toEqual({ form: { a: "1", b: "two" } });
  });

  it("runs in-process handlers and forwarding for the same item", async () => {
    const source = await createSource(p, {
      name: "both",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id", forward: { appId } },
    });
    const seen: string[] = [];
    p.engine.inbound.on(
      "employee.created",
      (e) => {
        seen.push(e.eventId!);
      },
      { source: source.id },
    );
    const before = sink.received.length;
    await send(p, source.ingestPath, JSON.stringify({ id: "both-1", type: "employee.created" }), {
      "content-type": "application/json",
    });
    await sink.waitFor(before + 1, 10_000);
    await waitUntil(() => seen.length === 1, 10_000, "the handler");
    expect(seen).toEqual(["both-1"]);
  });

  it("fails the item (after retries) when the forward target is gone", async () => {
    const app = (await (await p.request("POST", "/api/v1/app", { name: "Doomed" })).json()) as { id: string };
    const source = await createSource(p, {
      name: "doomed",
      provider: "none",
      secrets: [],
      options: { forward: { appId: app.id }, maxAttempts: 2, retryBaseMs: 10 },
    });
    expect((await p.request("DELETE", `/api/v1/app/${app.id}`)).status).toBe(204);
    await send(p, source.ingestPath, "{}", { "content-type": "application/json" });
    await waitUntil(
      async () => (await inbox(p, source.id))[0]?.status === "failed",
      10_000,
      "the item to fail",
    );
    expect((await inbox(p, source.id))[0]!.lastError).toContain("does not exist");
  });
});
