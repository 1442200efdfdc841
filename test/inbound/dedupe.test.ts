import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { createSource, GENERIC_OPTIONS, inbox, send, signGeneric, signStandard, whsec } from "./helpers.js";

describe("de-duplication on the provider's event id", () => {
  let p: TestPigeon;
  const handled = new Map<string, number>();
  let secret: string;
  let path: string;
  let sourceId: string;

  beforeAll(async () => {
    p = await startPigeon();
    p.engine.inbound.on("*", (event) => {
      const key = event.eventId ?? event.id;
      handled.set(key, (handled.get(key) ?? 0) + 1);
    });
    secret = whsec();
    const source = await createSource(p, {
      name: "dedupe",
      provider: "standard-webhooks",
      secrets: [secret],
    });
    path = source.ingestPath;
    sourceId = source.id;
  });
  afterAll(async () => {
    await p.close();
  });

  it("handles an event sent 3 times at once exactly once and records the copies", async () => {
    const body = JSON.stringify({ type: "employee.created", data: { id: 1 } });
    // Each copy is signed separately (a provider's retry has a fresh timestamp).
    const responses = await Promise.all(
      [0, 1, 2].map((i) =>
        send(p, path, body, signStandard(secret, "msg_concurrent", body, Math.floor(Date.now() / 1000) - i)),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200]);
    const statuses = responses.map((r) => r.headers.get("pigeon-inbox-status")).sort();
    expect(statuses).toEqual(["duplicate", "duplicate", "received"]);
    const first = responses
      .find((r) => r.headers.get("pigeon-inbox-status") === "received")!
      .headers.get("pigeon-inbox-item");
    for (const r of responses.filter((r) => r.headers.get("pigeon-inbox-status") === "duplicate"))
      expect(r.headers.get("pigeon-duplicate-of")).toBe(first);

    await waitUntil(() => handled.get("msg_concurrent") === 1, 10_000, "the handler");
    await new Promise((r) => setTimeout(r, 200));
    expect(handled.get("msg_concurrent")).toBe(1);
    const items = (await inbox(p, sourceId)).filter((i) => i.eventId === "msg_concurrent");
    expect(items.map((i) => i.status).sort()).toEqual(["duplicate", "duplicate", "processed"]);
  });

  it("handles an event sent 3 times one after another exactly once", async () => {
    const body = JSON.stringify({ type: "employee.created", data: { id: 2 } });
    const statuses: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await send(p, path, body, signStandard(secret, "msg_sequential", body));
      expect(res.status).toBe(200);
      statuses.push(res.headers.get("pigeon-inbox-status")!);
      // Let the first copy be processed before the next arrives: a late retry is still a duplicate.
      if (i === 0) await waitUntil(() => handled.get("msg_sequential") === 1, 10_000, "the first copy");
    }
    expect(statuses).toEqual(["received", "duplicate", "duplicate"]);
    await new Promise((r) => setTimeout(r, 200));
    expect(handled.get("msg_sequential")).toBe(1);
  });

  it("holds under a burst of many copies of many events", async () => {
    const events = Array.from({ length: 20 }, (_, i) => `msg_burst_${i}`);
    const sends = events.flatMap((id) =>
      [0, 1, 2, 3, 4].map(() => {
        const body = JSON.stringify({ type: "burst", id });
        return send(p, path, body, signStandard(secret, id, body));
      }),
    );
    const results = await Promise.all(sends);
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(results.filter((r) => r.headers.get("pigeon-inbox-status") === "received")).toHaveLength(20);
    await waitUntil(() => events.every((id) => handled.get(id) === 1), 10_000, "every burst event");
    await new Promise((r) => setTimeout(r, 200));
    expect(events.every((id) => handled.get(id) === 1)).toBe(true);
  });

  it("uses the configured event id for generic-hmac, and does not de-duplicate across sources", async () => {
    const a = await createSource(p, {
      name: "g-a",
      provider: "generic-hmac",
      secrets: ["k"],
      options: GENERIC_OPTIONS,
    });
    const b = await createSource(p, {
      name: "g-b",
      provider: "generic-hmac",
      secrets: ["k"],
      options: GENERIC_OPTIONS,
    });
    const body = JSON.stringify({ type: "order.paid" });
    const once = await send(p, a.ingestPath, body, signGeneric("k", body, undefined, "order-7"));
    const twice = await send(p, a.ingestPath, body, signGeneric("k", body, undefined, "order-7"));
    const other = await send(p, b.ingestPath, body, signGeneric("k", body, undefined, "order-7"));
    expect([once, twice, other].map((r) => r.headers.get("pigeon-inbox-status"))).toEqual([
      "received",
      "duplicate",
      "received",
    ]);
  });

  it("does not de-duplicate events that carry no id", async () => {
    const source = await createSource(p, { name: "no-ids", provider: "none", secrets: [] });
    const a = await send(p, source.ingestPath, "{}", { "content-type": "application/json" });
    const b = await send(p, source.ingestPath, "{}", { "content-type": "application/json" });
    expect([a, b].map((r) => r.headers.get("pigeon-inbox-status"))).toEqual(["received", "received"]);
  });
});
