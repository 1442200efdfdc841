import { afterAll, beforeAll, expect, it } from "vitest";
import { describeBackends } from "../helpers/backends.js";
import { startPigeonOn, type TestPigeon } from "../helpers/pigeon.js";
import { Sink } from "../helpers/sink.js";

/** A message's deliverAt (Svix's MessageIn field): its deliveries are not sent before that time. */
describeBackends("scheduled messages (deliverAt)", (backend) => {
  let pigeon: TestPigeon;
  let cleanup: () => Promise<void>;
  let sink: Sink;
  let appId: string;

  beforeAll(async () => {
    sink = await Sink.start();
    ({ pigeon, cleanup } = await startPigeonOn(backend));
    appId = (await pigeon.svix.application.create({ name: "Scheduled" })).id;
    await pigeon.svix.endpoint.create(appId, { url: sink.url() });
  });
  afterAll(async () => {
    await cleanup?.();
    await sink?.close();
  });

  it("sends a message at its deliverAt, not before, and one whose time has passed at once", async () => {
    const deliverAt = Date.now() + 1_500;
    const later = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "t.later",
      payload: { n: 1 },
      deliverAt: new Date(deliverAt).toISOString(),
    });
    expect(later.status).toBe(202);
    const past = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "t.past",
      payload: { n: 2 },
      deliverAt: new Date(Date.now() - 60_000).toISOString(),
    });
    expect(past.status).toBe(202);
    await sink.waitFor(2, 15_000);
    const arrival = (type: string) =>
      sink.received.find(
        (r) => (JSON.parse(r.body.toString()) as { n: number }).n === (type === "later" ? 1 : 2),
      );
    // The past one went first, the scheduled one no earlier than its time (arrival clocks only).
    expect(arrival("past")!.receivedAt).toBeLessThan(arrival("later")!.receivedAt);
    expect(arrival("later")!.receivedAt).toBeGreaterThanOrEqual(deliverAt);
  });
});
