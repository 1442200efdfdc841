import { afterEach, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink } from "../helpers/sink.js";

/**
 * Stopping the dispatcher, and a store that fails to reserve a rate slot: rows are given back
 * unsent, never sent after stop() returned, and no attempt is recorded for a send that never
 * started. Real SQLite files and a real loopback receiver.
 */
describe("dispatcher: stopping and rate-slot failures", () => {
  let pigeon: TestPigeon | undefined;
  let sink: Sink | undefined;
  afterEach(async () => {
    await pigeon?.close();
    await sink?.close();
    pigeon = undefined;
    sink = undefined;
  });

  async function appWithEndpoint(p: TestPigeon, s: Sink, rateLimit?: number) {
    const app = await p.svix.application.create({ name: "A" });
    const endpoint = await p.svix.endpoint.create(app.id, {
      url: s.url(),
      ...(rateLimit === undefined ? {} : { rateLimit }),
    });
    return { appId: app.id, endpointId: endpoint.id };
  }

  const publish = (p: TestPigeon, appId: string, n: number) =>
    p.svix.message.create(appId, { eventType: "t.t", payload: { n } });

  it("gives back sends still waiting for their rate slot instead of sending them first", async () => {
    sink = await Sink.start();
    pigeon = await startPigeon();
    const { appId, endpointId } = await appWithEndpoint(pigeon, sink, 1);
    const ids: string[] = [];
    for (let n = 0; n < 8; n++) ids.push((await publish(pigeon, appId, n)).id);
    await sink.waitFor(1);
    await pigeon.engine.dispatcher.stop();
    const sentBeforeStopEnded = sink.received.length;
    // At one request a second, the other seven waited for their slots: they used to be sent, one
    // a second, before stop() returned.
    expect(sentBeforeStopEnded).toBeLessThan(4);
    let givenBack = 0;
    for (const id of ids) {
      const delivery = await pigeon.engine.store.getDelivery(id, endpointId);
      if (delivery?.status === "pending" && delivery.attempts === 0) givenBack++;
    }
    expect(givenBack).toBe(8 - sentBeforeStopEnded);
  });

  it("records no attempt when a rate slot cannot be reserved, and sends once the store answers", async () => {
    sink = await Sink.start();
    pigeon = await startPigeon();
    const store = pigeon.engine.store as Store;
    const reserve = store.reserveSendSlot.bind(store);
    let failures = 2;
    store.reserveSendSlot = async (...args: Parameters<Store["reserveSendSlot"]>) => {
      if (failures-- > 0) throw new Error("Connection terminated unexpectedly");
      return reserve(...args);
    };
    const { appId, endpointId } = await appWithEndpoint(pigeon, sink, 10);
    const message = await publish(pigeon, appId, 1);
    await sink.waitFor(1);
    await expect
      .poll(async () => (await store.getDelivery(message.id, endpointId))?.status, { timeout: 5_000 })
      .toBe("succeeded");
    const delivery = await store.getDelivery(message.id, endpointId);
    expect(delivery?.attempts).toBe(1);
    const attempts = await pigeon.svix.messageAttempt.listByMsg(appId, message.id);
    expect(attempts.data.map((a) => a.status)).toEqual([0]);
    expect((await store.getEndpoint(appId, endpointId))?.failingSince).toBeNull();
  });

  it("sends nothing after stop() from a claim that was under way when it was called", async () => {
    sink = await Sink.start();
    pigeon = await startPigeon();
    const store = pigeon.engine.store as Store;
    const claim = store.claimDueDeliveries.bind(store);
    let claimStarted: () => void = () => {};
    const started = new Promise<void>((resolve) => {
      claimStarted = resolve;
    });
    store.claimDueDeliveries = async (...args: Parameters<Store["claimDueDeliveries"]>) => {
      const claimed = await claim(...args);
      if (claimed.length > 0) {
        claimStarted();
        // A slow database: stop() is called while this claim is still out.
        await new Promise((resolve) => setTimeout(resolve, 150));
      }
      return claimed;
    };
    const { appId, endpointId } = await appWithEndpoint(pigeon, sink);
    const message = await publish(pigeon, appId, 1);
    await started;
    await pigeon.engine.dispatcher.stop();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(sink.received.length).toBe(0);
    // Given back due, not left under its lease until it runs out.
    const delivery = await store.getDelivery(message.id, endpointId);
    expect(delivery?.status).toBe("pending");
    expect(delivery?.nextAttemptAt).toBeLessThanOrEqual(Date.now());
  });
});
