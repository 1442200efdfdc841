import { expect, it } from "vitest";
import type { DeliveryOutcome, Store } from "../../src/store/store.js";
import type { Application, Delivery, Endpoint } from "../../src/store/types.js";
import { describeBackend, describeBackends } from "../helpers/backends.js";
import { application, attempt, claimAt, endpoint, LEASE, publish, T0, useStore } from "./fixtures.js";

// The Store contract for a delivery queued again (resend) while a worker was still sending it:
// the outcome of that send is recorded (attempt and count), but it must not overwrite the requeue,
// or the resend is lost (the API answered 202 and nothing was sent again).

async function setup(store: Store): Promise<{ app: Application; ep: Endpoint; otherEp: Endpoint }> {
  const app = application();
  await store.createApplication(app);
  const ep = endpoint(app.id);
  await store.createEndpoint(ep);
  const otherEp = endpoint(app.id, { url: "https://other.invalid/" });
  await store.createEndpoint(otherEp);
  return { app, ep, otherEp };
}

/** The outcome a worker records for `d`, with its attempt made at `at`. */
function outcomeOf(d: Delivery, result: DeliveryOutcome["result"], at: number): DeliveryOutcome {
  const succeeded = result === "succeeded";
  return {
    deliveryId: d.id,
    endpointId: d.endpointId,
    attempt: attempt(d, {
      createdAt: at,
      succeeded,
      responseStatusCode: succeeded ? 200 : 500,
      errorCode: succeeded ? null : "http_status",
    }),
    result,
    ...(result === "retry" ? { nextAttemptAt: at + 5_000 } : {}),
  };
}

describeBackends("store: an outcome recorded after the delivery was requeued", (backend) => {
  const ctx = useStore(backend);

  for (const result of ["succeeded", "retry", "failed"] as const) {
    it(`keeps the requeued row due (outcome ${result}), records and counts its attempt`, async () => {
      const { app, ep, otherEp } = await setup(ctx.store);
      const [d] = (await publish(ctx.store, app, [ep])).deliveries;
      // Another endpoint's delivery in the same batch, not requeued.
      const [other] = (await publish(ctx.store, app, [otherEp])).deliveries;
      expect(await ctx.store.claimDueDeliveries(claimAt(T0))).toHaveLength(2);

      // A resend while the first send is in flight: what the API's resend route does.
      const current = await ctx.store.getDelivery(d!.msgId, ep.id);
      await ctx.store.requeueDelivery(current!, T0 + 10);

      const first = outcomeOf(d!, result, T0 + 20);
      const untouched = outcomeOf(other!, "succeeded", T0 + 20);
      await ctx.store.completeDeliveries([first, untouched], T0 + 20);

      // The requeue stands: due at once, manual; the attempt happened and counts.
      expect(await ctx.store.getDelivery(d!.msgId, ep.id)).toMatchObject({
        status: "pending",
        nextAttemptAt: T0 + 10,
        manual: true,
        attempts: 1,
      });
      expect(await ctx.store.getAttempt(d!.msgId, first.attempt!.id)).toEqual(first.attempt);
      // The endpoint's health follows the attempt all the same.
      expect((await ctx.store.getEndpoint(app.id, ep.id))?.failingSince).toBe(
        result === "succeeded" ? null : T0 + 20,
      );
      // The rest of the batch is recorded as usual.
      expect(await ctx.store.getDelivery(other!.msgId, otherEp.id)).toMatchObject({
        status: "succeeded",
        attempts: 1,
      });
      expect(await ctx.store.nextDueAt()).toBe(T0 + 10);

      // So it is claimed and sent again, and that send's outcome is what the row ends with.
      const again = await ctx.store.claimDueDeliveries(claimAt(T0 + 30));
      expect(again.map((c) => c.delivery.id)).toEqual([d!.id]);
      expect(again[0]!.delivery).toMatchObject({ manual: true, attempts: 1 });
      const second = outcomeOf(d!, "succeeded", T0 + 40);
      await ctx.store.completeDeliveries([second], T0 + 40);
      expect(await ctx.store.getDelivery(d!.msgId, ep.id)).toMatchObject({
        status: "succeeded",
        nextAttemptAt: T0 + 40,
        attempts: 2,
      });
      expect(await ctx.store.claimDueDeliveries(claimAt(T0 + 50))).toEqual([]);
    });
  }

  it("an outcome without an attempt (nothing was sent) leaves the requeued row as it is", async () => {
    const { app, ep } = await setup(ctx.store);
    const [d] = (await publish(ctx.store, app, [ep])).deliveries;
    await ctx.store.claimDueDeliveries(claimAt(T0));
    await ctx.store.requeueDelivery((await ctx.store.getDelivery(d!.msgId, ep.id))!, T0 + 10);
    await ctx.store.completeDeliveries([{ deliveryId: d!.id, endpointId: ep.id, result: "failed" }], T0 + 20);
    expect(await ctx.store.getDelivery(d!.msgId, ep.id)).toMatchObject({
      status: "pending",
      nextAttemptAt: T0 + 10,
      attempts: 0,
    });
  });
});

describeBackend("postgres", "store: a late outcome and another worker's lease", () => {
  const ctx = useStore("postgres");

  it("an outcome recorded after the lease passed to another worker leaves that worker's lease", async () => {
    const workerA = ctx.store;
    const workerB = await ctx.test.openAnother();
    const { app, ep } = await setup(workerA);
    const [d] = (await publish(workerA, app, [ep])).deliveries;
    expect(await workerA.claimDueDeliveries(claimAt(T0))).toHaveLength(1);
    // A's send outlives its lease; B claims the delivery and sends it too.
    expect(await workerB.claimDueDeliveries(claimAt(T0 + LEASE))).toHaveLength(1);

    const late = outcomeOf(d!, "failed", T0 + LEASE + 10);
    await workerA.completeDeliveries([late], T0 + LEASE + 10);
    // B still holds it: A's attempt is recorded, the row's state is B's to decide.
    expect(await workerA.getDelivery(d!.msgId, ep.id)).toMatchObject({
      status: "sending",
      nextAttemptAt: T0 + 2 * LEASE,
      attempts: 1,
    });
    expect(await workerA.getAttempt(d!.msgId, late.attempt!.id)).toEqual(late.attempt);

    await workerB.completeDeliveries([outcomeOf(d!, "succeeded", T0 + LEASE + 20)], T0 + LEASE + 20);
    expect(await workerA.getDelivery(d!.msgId, ep.id)).toMatchObject({ status: "succeeded", attempts: 2 });
  });
});
