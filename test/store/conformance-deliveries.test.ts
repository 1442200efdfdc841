import { expect, it } from "vitest";
import { slotSpacingMs } from "../../src/store/rate-slots.js";
import type { ClaimRequest, Store } from "../../src/store/store.js";
import type { Application, Delivery, Endpoint } from "../../src/store/types.js";
import { describeBackends } from "../helpers/backends.js";
import { application, attempt, claimAt, endpoint, LEASE, publish, T0, useStore } from "./fixtures.js";

// The Store contract, part 3: the dispatcher's hot path (claim, complete, release) and the
// operations around it (requeue, recover, counts, next due time, send slots).

async function setup(store: Store, endpoints = 2): Promise<{ app: Application; eps: Endpoint[] }> {
  const app = application();
  await store.createApplication(app);
  const eps: Endpoint[] = [];
  for (let i = 0; i < endpoints; i++) {
    const ep = endpoint(app.id, { url: `https://bank${i}.invalid/` });
    await store.createEndpoint(ep);
    eps.push(ep);
  }
  return { app, eps };
}

/** `n` messages to one endpoint, due at T0, T0+1, … */
async function queue(
  store: Store,
  app: Application,
  ep: Endpoint,
  n: number,
  from = T0,
): Promise<Delivery[]> {
  const out: Delivery[] = [];
  for (let i = 0; i < n; i++) {
    out.push(...(await publish(store, app, [ep], {}, { nextAttemptAt: from + i })).deliveries);
  }
  return out;
}

describeBackends("store: claiming deliveries", (backend) => {
  const ctx = useStore(backend);

  it("claims only due pending work, earliest first, with its message and endpoint, under a lease", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    const late = await publish(ctx.store, app, [ep], {}, { nextAttemptAt: T0 - 10 });
    const early = await publish(ctx.store, app, [ep], {}, { nextAttemptAt: T0 - 20 });
    await publish(ctx.store, app, [ep], {}, { nextAttemptAt: T0 + 1 });
    // Held: written while the endpoint was pending its handshake (the store decides at the write);
    // a held row is never claimed, whatever the endpoint's status now.
    await ctx.store.updateEndpoint({ ...ep, status: "pending" }, { handshakeState: true });
    await publish(ctx.store, app, [ep], {}, { status: "held", nextAttemptAt: T0 - 100 });
    await ctx.store.updateEndpoint(ep, { handshakeState: true });
    await publish(ctx.store, app, [ep], {}, { status: "succeeded", nextAttemptAt: T0 - 100 });
    await publish(ctx.store, app, [ep], {}, { status: "failed", nextAttemptAt: T0 - 100 });

    const claimed = await ctx.store.claimDueDeliveries(claimAt(T0));
    expect(claimed.map((c) => c.delivery.id)).toEqual([early.deliveries[0]!.id, late.deliveries[0]!.id]);
    const first = claimed[0]!;
    expect(first.delivery).toEqual({ ...early.deliveries[0], status: "sending" });
    expect(first.message).toEqual(early.msg);
    expect(first.endpoint).toEqual(ep);

    // The lease end is stored as the row's next due time.
    expect(await ctx.store.getDelivery(early.msg.id, ep.id)).toMatchObject({
      status: "sending",
      nextAttemptAt: T0 + LEASE,
      updatedAt: T0,
    });
    expect(await ctx.store.countDeliveriesByStatus(ep.id)).toEqual({
      held: 1,
      pending: 1,
      sending: 2,
      succeeded: 1,
      failed: 1,
    });
  });

  it("a leased row is invisible until its lease expires, then claimable again", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const [d] = await queue(ctx.store, app, eps[0]!, 1);
    expect(await ctx.store.claimDueDeliveries(claimAt(T0))).toHaveLength(1);
    expect(await ctx.store.claimDueDeliveries(claimAt(T0 + 1))).toEqual([]);
    expect(await ctx.store.claimDueDeliveries(claimAt(T0 + LEASE - 1))).toEqual([]);

    const again = await ctx.store.claimDueDeliveries(claimAt(T0 + LEASE));
    expect(again.map((c) => c.delivery.id)).toEqual([d!.id]);
    // The claimed delivery is handed back as it was before the claim (status aside).
    expect(again[0]!.delivery).toMatchObject({ status: "sending", nextAttemptAt: T0 + LEASE });
    expect((await ctx.store.getDelivery(d!.msgId, d!.endpointId))?.nextAttemptAt).toBe(T0 + 2 * LEASE);
  });

  it("respects the batch limit and skips excluded endpoints", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const onA = await queue(ctx.store, app, a, 3, T0 - 10);
    const onB = await queue(ctx.store, app, b, 3, T0 - 5);

    const two = await ctx.store.claimDueDeliveries(claimAt(T0, { limit: 2 }));
    expect(two.map((c) => c.delivery.id)).toEqual([onA[0]!.id, onA[1]!.id]);

    const notA = await ctx.store.claimDueDeliveries(claimAt(T0, { excludeEndpointIds: [a.id] }));
    expect(notA.map((c) => c.delivery.id)).toEqual(onB.map((d) => d.id));
    expect(await ctx.store.claimDueDeliveries(claimAt(T0, { excludeEndpointIds: [a.id, b.id] }))).toEqual([]);
  });

  it("takes no more per endpoint than its concurrency cap leaves room for", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    await queue(ctx.store, app, a, 5, T0 - 10);
    await queue(ctx.store, app, b, 1, T0 - 5);
    const perEndpoint = async (claim: ClaimRequest) => {
      const claimed = await ctx.store.claimDueDeliveries(claim);
      const counts = { a: 0, b: 0 };
      for (const c of claimed) counts[c.endpoint.id === a.id ? "a" : "b"] += 1;
      // Put everything back so each case starts from the same queue.
      await ctx.store.releaseDeliveries(
        claimed.map((c) => c.delivery.id),
        T0 - 20,
      );
      return counts;
    };

    expect(await perEndpoint(claimAt(T0, { endpointConcurrency: 2 }))).toEqual({ a: 2, b: 1 });
    expect(await perEndpoint(claimAt(T0, { endpointConcurrency: 2, heldByEndpoint: { [a.id]: 1 } }))).toEqual(
      {
        a: 1,
        b: 1,
      },
    );
    expect(await perEndpoint(claimAt(T0, { endpointConcurrency: 2, heldByEndpoint: { [a.id]: 2 } }))).toEqual(
      {
        a: 0,
        b: 1,
      },
    );
    expect(await perEndpoint(claimAt(T0, { endpointConcurrency: 2, heldByEndpoint: { [a.id]: 5 } }))).toEqual(
      {
        a: 0,
        b: 1,
      },
    );
    expect(await perEndpoint(claimAt(T0, { endpointConcurrency: 4, heldByEndpoint: { [b.id]: 3 } }))).toEqual(
      {
        a: 4,
        b: 1,
      },
    );
  });

  it("releases leases early: sending rows only, due at once", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    const [d1, d2] = await queue(ctx.store, app, ep, 2);
    const done = await publish(ctx.store, app, [ep], {}, { status: "succeeded" });
    const claimed = await ctx.store.claimDueDeliveries(claimAt(T0 + 1));
    expect(claimed).toHaveLength(2);

    await ctx.store.releaseDeliveries([d1!.id, done.deliveries[0]!.id], T0 + 5);
    await ctx.store.releaseDeliveries([], T0 + 5);
    expect(await ctx.store.getDelivery(d1!.msgId, ep.id)).toMatchObject({
      status: "pending",
      nextAttemptAt: T0 + 5,
      updatedAt: T0 + 5,
    });
    expect((await ctx.store.getDelivery(d2!.msgId, ep.id))?.status).toBe("sending");
    expect((await ctx.store.getDelivery(done.msg.id, ep.id))?.status).toBe("succeeded");
    expect((await ctx.store.claimDueDeliveries(claimAt(T0 + 5))).map((c) => c.delivery.id)).toEqual([d1!.id]);
  });

  it("nextDueAt is the earliest pending or leased row, ignoring held and finished ones", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    expect(await ctx.store.nextDueAt()).toBeUndefined();
    const pendingEp = await ctx.store.createEndpoint(endpoint(app.id, { status: "pending" }));
    await publish(ctx.store, app, [pendingEp], {}, { status: "held", nextAttemptAt: T0 - 100 });
    await publish(ctx.store, app, [ep], {}, { status: "failed", nextAttemptAt: T0 - 100 });
    await publish(ctx.store, app, [ep], {}, { status: "succeeded", nextAttemptAt: T0 - 100 });
    expect(await ctx.store.nextDueAt()).toBeUndefined();
    await publish(ctx.store, app, [ep], {}, { nextAttemptAt: T0 + 500 });
    await publish(ctx.store, app, [ep], {}, { nextAttemptAt: T0 + 200 });
    expect(await ctx.store.nextDueAt()).toBe(T0 + 200);
    await ctx.store.claimDueDeliveries(claimAt(T0 + 300, { leaseUntil: T0 + 400 }));
    expect(await ctx.store.nextDueAt()).toBe(T0 + 400);
  });
});

describeBackends("store: completing deliveries", (backend) => {
  const ctx = useStore(backend);

  it("records attempts and moves deliveries to retry, succeeded or failed", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    const [r, s, f, skipped] = await queue(ctx.store, app, ep, 4);
    // All four claimed (they come due T0 … T0 + 3): an outcome is recorded for a claimed row.
    await ctx.store.claimDueDeliveries(claimAt(T0 + 3));
    const now = T0 + 100;
    const ar = attempt(r!, { createdAt: now, errorCode: "timeout", responseStatusCode: 0 });
    const as = attempt(s!, {
      createdAt: now,
      succeeded: true,
      responseStatusCode: 200,
      errorCode: null,
      triggerType: 1,
    });
    const af = attempt(f!, { createdAt: now, errorCode: "http_status" });
    await ctx.store.completeDeliveries(
      [
        { deliveryId: r!.id, endpointId: ep.id, attempt: ar, result: "retry", nextAttemptAt: now + 5000 },
        { deliveryId: s!.id, endpointId: ep.id, attempt: as, result: "succeeded" },
        { deliveryId: f!.id, endpointId: ep.id, attempt: af, result: "failed" },
        { deliveryId: skipped!.id, endpointId: ep.id, result: "failed" },
      ],
      now,
    );
    await ctx.store.completeDeliveries([], now);

    const get = (d: Delivery) => ctx.store.getDelivery(d.msgId, ep.id);
    expect(await get(r!)).toMatchObject({
      status: "pending",
      attempts: 1,
      nextAttemptAt: now + 5000,
      lastError: "timeout",
      updatedAt: now,
    });
    expect(await get(s!)).toMatchObject({
      status: "succeeded",
      attempts: 1,
      nextAttemptAt: now,
      lastError: null,
    });
    expect(await get(f!)).toMatchObject({ status: "failed", attempts: 1, lastError: "http_status" });
    expect(await get(skipped!)).toMatchObject({ status: "failed", attempts: 0, lastError: null });
    for (const at of [ar, as, af]) expect(await ctx.store.getAttempt(at.msgId, at.id)).toEqual(at);

    // Listed by status as Svix numbers it: 0 success, 2 fail; nothing recorded is pending (1) or
    // sending (3), which both listed the failed attempts before.
    const byStatus = async (status: number) =>
      (await ctx.store.listAttemptsByEndpoint(app.id, ep.id, { limit: 50, status })).data
        .map((a) => a.id)
        .sort();
    expect(await byStatus(0)).toEqual([as.id]);
    expect(await byStatus(2)).toEqual([ar.id, af.id].sort());
    expect(await byStatus(1)).toEqual([]);
    expect(await byStatus(3)).toEqual([]);

    // The retry comes due again at its time, not before.
    expect(await ctx.store.claimDueDeliveries(claimAt(now + 4999))).toEqual([]);
    expect((await ctx.store.claimDueDeliveries(claimAt(now + 5000))).map((c) => c.delivery.id)).toEqual([
      r!.id,
    ]);
  });

  it("records any response text an endpoint sends, NUL included, with the rest of its batch", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    const [nul, awkward, wide] = await queue(ctx.store, app, ep, 3);
    await ctx.store.claimDueDeliveries(claimAt(T0 + 2));
    const now = T0 + 100;
    // A body is whatever the endpoint sent: quotes, backslashes, braces, JSON-looking escapes,
    // characters beyond the BMP and a NUL byte, which PostgreSQL text cannot hold.
    const withNul = attempt(nul!, { createdAt: now, response: 'before\u0000after {"a":"\\u0000"}' });
    const withAwkward = attempt(awkward!, {
      createdAt: now,
      response: 'say "hi" \\ {1,2} \\u0041 NULL ,}{ 🐦 \t\r\n',
    });
    const withWide = attempt(wide!, { createdAt: now, response: `${"x".repeat(64 * 1024)} lone \ud800` });
    await ctx.store.completeDeliveries(
      [withNul, withAwkward, withWide].map((a) => ({
        deliveryId: a.deliveryId,
        endpointId: ep.id,
        attempt: a,
        result: "failed" as const,
      })),
      now,
    );

    const stored = await ctx.store.getAttempt(withNul.msgId, withNul.id);
    // SQLite keeps the NUL; PostgreSQL stores the replacement character in its place.
    expect(stored?.response).toBe(
      backend === "postgres" ? 'before\uFFFDafter {"a":"\\u0000"}' : withNul.response,
    );
    expect(await ctx.store.getAttempt(withAwkward.msgId, withAwkward.id)).toEqual(withAwkward);
    // A lone surrogate is not valid UTF-8: the replacement character takes its place (PostgreSQL's
    // JSON parser refuses it; SQLite writes one U+FFFD per byte of its encoding).
    const storedWide = await ctx.store.getAttempt(withWide.msgId, withWide.id);
    expect({ ...storedWide, response: "" }).toEqual({ ...withWide, response: "" });
    expect(storedWide?.response).toMatch(/^x{65536} lone \uFFFD+$/);
    for (const d of [nul!, awkward!, wide!]) {
      expect(await ctx.store.getDelivery(d.msgId, ep.id)).toMatchObject({ status: "failed", attempts: 1 });
    }
  });

  it("sets failing_since on the first failure, keeps it, and clears it on a success", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const ds = await queue(ctx.store, app, a, 4);
    const [onB] = await queue(ctx.store, app, b, 1);
    const fail = (d: Delivery, at: number) => ({
      deliveryId: d.id,
      endpointId: d.endpointId,
      attempt: attempt(d, { createdAt: at }),
      result: "retry" as const,
      nextAttemptAt: at + 1000,
    });
    const succeed = (d: Delivery, at: number) => ({
      deliveryId: d.id,
      endpointId: d.endpointId,
      attempt: attempt(d, { createdAt: at, succeeded: true, responseStatusCode: 200, errorCode: null }),
      result: "succeeded" as const,
    });
    const failingSince = async (ep: Endpoint) => (await ctx.store.getEndpoint(app.id, ep.id))?.failingSince;

    await ctx.store.completeDeliveries([fail(ds[0]!, T0 + 10), fail(onB!, T0 + 10)], T0 + 10);
    expect(await failingSince(a)).toBe(T0 + 10);
    await ctx.store.completeDeliveries([fail(ds[1]!, T0 + 20)], T0 + 20);
    expect(await failingSince(a)).toBe(T0 + 10);
    // A success in the same batch as a failure wins: the endpoint answered.
    await ctx.store.completeDeliveries([fail(ds[2]!, T0 + 30), succeed(ds[3]!, T0 + 30)], T0 + 30);
    expect(await failingSince(a)).toBeNull();
    expect(await failingSince(b)).toBe(T0 + 10);
    // No attempt (nothing was sent) does not touch it.
    await ctx.store.completeDeliveries(
      [{ deliveryId: ds[0]!.id, endpointId: a.id, result: "failed" }],
      T0 + 40,
    );
    expect(await failingSince(a)).toBeNull();
  });

  it("disables an endpoint with exactly one endpoint.disabled event", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = { ...eps[0]!, uid: "bank-uid" };
    await ctx.store.updateEndpoint(ep);
    const [d1, d2, d3] = await queue(ctx.store, app, ep, 3);
    await ctx.store.completeDeliveries(
      [
        {
          deliveryId: d1!.id,
          endpointId: ep.id,
          attempt: attempt(d1!),
          result: "retry",
          nextAttemptAt: T0 + 1,
        },
      ],
      T0 + 123,
    );
    const now = T0 + 10_000;
    await ctx.store.completeDeliveries(
      [
        {
          deliveryId: d2!.id,
          endpointId: ep.id,
          attempt: attempt(d2!),
          result: "failed",
          disableEndpoint: { reason: "failing" },
        },
        {
          deliveryId: d3!.id,
          endpointId: ep.id,
          attempt: attempt(d3!),
          result: "failed",
          disableEndpoint: { reason: "failing" },
        },
      ],
      now,
    );
    await ctx.store.completeDeliveries(
      [
        {
          deliveryId: d1!.id,
          endpointId: ep.id,
          attempt: attempt(d1!),
          result: "failed",
          disableEndpoint: { reason: "gone" },
        },
      ],
      now + 1,
    );

    const disabled = await ctx.store.getEndpoint(app.id, ep.id);
    expect(disabled).toMatchObject({ disabled: true, updatedAt: now, failingSince: T0 + 123 });
    expect(await ctx.store.listActiveEndpoints(app.id)).toEqual([]);
    const events = (await ctx.store.listOperationalEvents({ limit: 10 })).data;
    expect(events).toEqual([
      {
        id: `op_${d2!.id.slice(4)}`,
        type: "endpoint.disabled",
        appId: app.id,
        data: {
          appId: app.id,
          endpointId: ep.id,
          endpointUid: "bank-uid",
          failSince: new Date(T0 + 123).toISOString(),
          reason: "failing",
          trigger: "automatic",
        },
        createdAt: now,
      },
    ]);
  });

  it("a 410 on a healthy endpoint disables it with a manual trigger and no failSince", async () => {
    const { app, eps } = await setup(ctx.store, 1);
    const ep = eps[0]!;
    const [d] = await queue(ctx.store, app, ep, 1);
    await ctx.store.completeDeliveries(
      [
        {
          deliveryId: d!.id,
          endpointId: ep.id,
          attempt: attempt(d!, { responseStatusCode: 410 }),
          result: "failed",
          disableEndpoint: { reason: "gone" },
        },
      ],
      T0 + 5,
    );
    const [event] = (await ctx.store.listOperationalEvents({ limit: 10 })).data;
    expect(event?.data).toEqual({
      appId: app.id,
      endpointId: ep.id,
      endpointUid: null,
      failSince: null,
      reason: "gone",
      trigger: "manual",
    });
  });
});

describeBackends("store: requeue, recover, counts and send slots", (backend) => {
  const ctx = useStore(backend);

  it("requeues an existing delivery as manual, or creates the row", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const { msg, deliveries } = await publish(
      ctx.store,
      app,
      [a],
      {},
      { status: "failed", attempts: 3, lastError: "x" },
    );
    const existing = deliveries[0]!;

    await ctx.store.requeueDelivery(existing, T0 + 50);
    expect(await ctx.store.getDelivery(msg.id, a.id)).toMatchObject({
      id: existing.id,
      status: "pending",
      nextAttemptAt: T0 + 50,
      manual: true,
      attempts: 3,
      updatedAt: T0 + 50,
    });

    const fresh: Delivery = {
      ...existing,
      id: "dlv_01HZZZZZZZZZZZZZZZZZZZZZZZ",
      endpointId: b.id,
      status: "failed",
      attempts: 0,
      lastError: null,
    };
    await ctx.store.requeueDelivery(fresh, T0 + 60);
    expect(await ctx.store.getDelivery(msg.id, b.id)).toMatchObject({
      id: fresh.id,
      status: "pending",
      nextAttemptAt: T0 + 60,
      manual: true,
      attempts: 0,
    });
    const claimed = await ctx.store.claimDueDeliveries(claimAt(T0 + 60));
    expect(claimed.map((c) => c.delivery.id).sort()).toEqual([existing.id, fresh.id].sort());
    expect(claimed.every((c) => c.delivery.manual)).toBe(true);
  });

  it("recovers failed deliveries of one endpoint created since a time", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const old = await publish(ctx.store, app, [a], { createdAt: T0 - 1000 }, { status: "failed" });
    const recent = await publish(ctx.store, app, [a, b], { createdAt: T0 + 10 }, { status: "failed" });
    const recentOk = await publish(ctx.store, app, [a], { createdAt: T0 + 20 }, { status: "succeeded" });

    expect(await ctx.store.recoverFailedDeliveries(a.id, T0, T0 + 100)).toBe(1);
    expect(await ctx.store.getDelivery(recent.msg.id, a.id)).toMatchObject({
      status: "pending",
      manual: true,
      nextAttemptAt: T0 + 100,
      updatedAt: T0 + 100,
    });
    expect((await ctx.store.getDelivery(old.msg.id, a.id))?.status).toBe("failed");
    expect((await ctx.store.getDelivery(recent.msg.id, b.id))?.status).toBe("failed");
    expect((await ctx.store.getDelivery(recentOk.msg.id, a.id))?.status).toBe("succeeded");
    expect(await ctx.store.recoverFailedDeliveries(a.id, T0, T0 + 200)).toBe(0);
    expect(await ctx.store.recoverFailedDeliveries(a.id, 0, T0 + 200)).toBe(1);
  });

  it("counts deliveries by status, optionally since a creation time", async () => {
    const { app, eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const zero = { held: 0, pending: 0, sending: 0, succeeded: 0, failed: 0 };
    expect(await ctx.store.countDeliveriesByStatus(a.id)).toEqual(zero);
    await publish(ctx.store, app, [a], { createdAt: T0 - 10 }, { status: "failed" });
    await publish(ctx.store, app, [a, b], { createdAt: T0 }, { status: "pending" });
    await publish(ctx.store, app, [a], { createdAt: T0 + 10 }, { status: "succeeded" });
    // Held: written once the endpoint is pending its handshake again.
    await ctx.store.updateEndpoint({ ...a, status: "pending" }, { handshakeState: true });
    await publish(ctx.store, app, [a], { createdAt: T0 + 20 }, { status: "held" });
    expect(await ctx.store.countDeliveriesByStatus(a.id)).toEqual({
      ...zero,
      failed: 1,
      pending: 1,
      succeeded: 1,
      held: 1,
    });
    expect(await ctx.store.countDeliveriesByStatus(a.id, T0)).toEqual({
      ...zero,
      pending: 1,
      succeeded: 1,
      held: 1,
    });
    expect(await ctx.store.countDeliveriesByStatus(b.id)).toEqual({ ...zero, pending: 1 });
  });

  it("spaces send slots 1000/rate ms apart per endpoint", async () => {
    const { eps } = await setup(ctx.store, 2);
    const [a, b] = eps as [Endpoint, Endpoint];
    const spacing = slotSpacingMs(10);
    expect(await ctx.store.reserveSendSlot(a.id, 10, T0)).toBe(T0);
    expect(await ctx.store.reserveSendSlot(a.id, 10, T0)).toBeCloseTo(T0 + spacing, 6);
    expect(await ctx.store.reserveSendSlot(a.id, 10, T0 + 50)).toBeCloseTo(T0 + 2 * spacing, 6);
    // Another endpoint has its own slots.
    expect(await ctx.store.reserveSendSlot(b.id, 10, T0)).toBe(T0);
    // After a quiet spell the next slot is now.
    expect(await ctx.store.reserveSendSlot(a.id, 10, T0 + 10_000)).toBe(T0 + 10_000);
    expect(await ctx.store.reserveSendSlot(a.id, 2, T0 + 10_000)).toBeCloseTo(T0 + 10_000 + spacing, 6);
    expect(await ctx.store.reserveSendSlot(a.id, 2, T0 + 10_000)).toBeCloseTo(
      T0 + 10_000 + spacing + slotSpacingMs(2),
      6,
    );
  });
});
