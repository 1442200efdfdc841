import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeBackends } from "../helpers/backends.js";
import { startPigeon, startPigeonOn, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { createSource, inbox, send, signStandard } from "./helpers.js";

/** Events of one employee, keyed by `/data/employeeId`, timed by `/data/updatedAt`. */
function event(id: string, employee: string, updatedAt: string): string {
  return JSON.stringify({ type: "employee.updated", id, data: { employeeId: employee, updatedAt } });
}

/** A source of those events: unsigned, keyed and timed by the fields above. */
function orderedSource(p: TestPigeon, name: string, extra: Record<string, unknown> = {}) {
  return createSource(p, {
    name,
    provider: "none",
    secrets: [],
    options: {
      eventIdPointer: "/id",
      orderingKey: { pointer: "/data/employeeId" },
      eventTime: { pointer: "/data/updatedAt" },
      ...extra,
    },
  });
}

describe("ordering: stale events are flagged and not handed on", () => {
  let p: TestPigeon;
  beforeAll(async () => {
    p = await startPigeon();
  });
  afterAll(async () => {
    await p.close();
  });

  const source = (name: string, extra: Record<string, unknown> = {}) => orderedSource(p, name, extra);

  it("marks older events of a key stale once a newer one was processed", async () => {
    const s = await source("ordered");
    const seen: string[] = [];
    p.engine.inbound.on(
      "*",
      (e) => {
        seen.push(e.eventId!);
      },
      { source: s.id },
    );
    const post = (id: string, employee: string, at: string) =>
      send(p, s.ingestPath, event(id, employee, at), { "content-type": "application/json" });

    expect((await post("e3", "emp-1", "2026-01-01T10:03:00Z")).status).toBe(200);
    await waitUntil(() => seen.includes("e3"), 10_000, "the newest event");
    // Older events for the same employee arrive late; another employee's older event is fine.
    expect((await post("e1", "emp-1", "2026-01-01T10:01:00Z")).status).toBe(200);
    expect((await post("e2", "emp-1", "2026-01-01T10:02:00Z")).status).toBe(200);
    expect((await post("f1", "emp-2", "2026-01-01T09:00:00Z")).status).toBe(200);
    // Same time as the newest is not older.
    expect((await post("e3b", "emp-1", "2026-01-01T10:03:00Z")).status).toBe(200);
    await waitUntil(
      async () =>
        (await inbox(p, s.id, "&status=received")).length === 0 &&
        (await inbox(p, s.id, "&status=processing")).length === 0,
      10_000,
      "every item settled",
    );
    const byId = new Map((await inbox(p, s.id)).map((i) => [i.eventId, i.status]));
    expect(Object.fromEntries(byId)).toEqual({
      e3: "processed",
      e1: "stale",
      e2: "stale",
      f1: "processed",
      e3b: "processed",
    });
    expect(seen.sort()).toEqual(["e3", "e3b", "f1"]);
  });

  it("decides staleness in arrival order when events of one key arrive together", async () => {
    const s = await source("burst");
    const seen: string[] = [];
    p.engine.inbound.on(
      "*",
      async (e) => {
        await new Promise((r) => setTimeout(r, 5));
        seen.push(e.eventId!);
      },
      { source: s.id },
    );
    // Sent one after another (so arrival order is known), but before any is processed.
    for (const [id, minute] of [
      ["b5", 5],
      ["b1", 1],
      ["b6", 6],
      ["b2", 2],
    ] as const) {
      await send(p, s.ingestPath, event(id, "emp-9", `2026-01-01T10:0${minute}:00Z`), {
        "content-type": "application/json",
      });
    }
    await waitUntil(
      async () => (await inbox(p, s.id)).every((i) => i.status !== "received" && i.status !== "processing"),
      10_000,
      "settled",
    );
    const byId = Object.fromEntries((await inbox(p, s.id)).map((i) => [i.eventId, i.status]));
    expect(byId).toEqual({ b5: "processed", b1: "stale", b6: "processed", b2: "stale" });
    // One key is handed on one at a time, in arrival order.
    expect(seen).toEqual(["b5", "b6"]);
  });

  it('hands stale events on, flagged, with staleAction "deliver"', async () => {
    const s = await source("deliver-stale", { staleAction: "deliver" });
    const seen: { id: string; stale: boolean }[] = [];
    p.engine.inbound.on(
      "*",
      (e) => {
        seen.push({ id: e.eventId!, stale: e.stale });
      },
      { source: s.id },
    );
    await send(p, s.ingestPath, event("d2", "emp-3", "2026-01-01T10:02:00Z"), {
      "content-type": "application/json",
    });
    await waitUntil(() => seen.length === 1, 10_000, "the first");
    await send(p, s.ingestPath, event("d1", "emp-3", "2026-01-01T10:01:00Z"), {
      "content-type": "application/json",
    });
    await waitUntil(() => seen.length === 2, 10_000, "the stale one");
    expect(seen).toEqual([
      { id: "d2", stale: false },
      { id: "d1", stale: true },
    ]);
    // The outcome is committed after the handler returns, not before.
    const d1 = async () => (await inbox(p, s.id)).find((i) => i.eventId === "d1")!;
    await waitUntil(async () => (await d1()).status === "processed", 10_000, "d1 recorded");
    expect((await d1()).stale).toBe(true);
    // A stale delivery does not move the mark backwards: d1.5 is still older than d2.
    await send(p, s.ingestPath, event("d15", "emp-3", "2026-01-01T10:01:30Z"), {
      "content-type": "application/json",
    });
    await waitUntil(() => seen.length === 3, 10_000, "the next stale one");
    expect(seen[2]).toEqual({ id: "d15", stale: true });
  });

  it("reads the ordering key from a header and the provider's own event time", async () => {
    const secret = "whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ=";
    const s = await createSource(p, {
      name: "sw-ordered",
      provider: "standard-webhooks",
      secrets: [secret],
      options: { orderingKey: { header: "x-account" }, toleranceSec: 0 },
    });
    const seen: string[] = [];
    p.engine.inbound.on(
      "*",
      (e) => {
        seen.push(e.eventId!);
      },
      { source: s.id },
    );
    const body = JSON.stringify({ type: "account.updated" });
    // webhook-timestamp is the event time for Standard Webhooks.
    await send(p, s.ingestPath, body, {
      ...signStandard(secret, "msg_new", body, 2_000_000_000),
      "x-account": "A",
    });
    await waitUntil(() => seen.length === 1, 10_000, "the new one");
    await send(p, s.ingestPath, body, {
      ...signStandard(secret, "msg_old", body, 1_900_000_000),
      "x-account": "A",
    });
    await send(p, s.ingestPath, body, {
      ...signStandard(secret, "msg_other", body, 1_900_000_000),
      "x-account": "B",
    });
    await waitUntil(() => seen.length === 2, 10_000, "the other account");
    await waitUntil(
      async () => (await inbox(p, s.id, "&status=stale")).length === 1,
      10_000,
      "the stale one",
    );
    expect(seen).toEqual(["msg_new", "msg_other"]);
  });
});

describeBackends("ordering: event times no clock can show", (backend) => {
  let p: TestPigeon;
  let cleanup: () => Promise<void>;
  beforeAll(async () => {
    ({ pigeon: p, cleanup } = await startPigeonOn(backend));
  });
  afterAll(async () => {
    await cleanup?.();
  });

  it("stores an event whose time is beyond any date, untimed, beside one sent with it", async () => {
    const s = await orderedSource(p, "far future");
    const seen: string[] = [];
    p.engine.inbound.on("*", (e) => void seen.push(e.eventId!), { source: s.id });
    const headers = { "content-type": "application/json" };
    // 10^23 ms is beyond any date (and PostgreSQL's bigint): it failed the whole intake batch there,
    // so this request and the one sharing its commit got 503 on every retry and were never stored.
    const [far, plain] = await Promise.all([
      send(p, s.ingestPath, event("far", "emp-1", "100000000000000000000000"), headers),
      send(p, s.ingestPath, event("plain", "emp-2", "2026-01-01T10:00:00Z"), headers),
    ]);
    expect(far.status, await far.clone().text()).toBe(200);
    expect(plain.status).toBe(200);
    await waitUntil(() => seen.length === 2, 10_000, "both handed on");
    expect(seen.sort()).toEqual(["far", "plain"]);
    // Untimed, it cannot make later events of its key look stale.
    expect(
      (await send(p, s.ingestPath, event("next", "emp-1", "2026-01-01T10:01:00Z"), headers)).status,
    ).toBe(200);
    await waitUntil(() => seen.includes("next"), 10_000, "the next event of its key");
  });
});
