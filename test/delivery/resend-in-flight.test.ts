import { describe, expect, it } from "vitest";
import { startPigeon } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";

/**
 * A resend of a delivery that is being sent at that moment, through the real dispatcher and a
 * loopback receiver. The resend queues the row again while the first send is in flight; recording
 * that send's outcome must not undo it, whether or not a claim took the requeued row meanwhile.
 */
describe("resend of a delivery in flight", () => {
  it("to a busy endpoint: sent again once the first send is answered, and only once", async () => {
    // One send at a time, so the endpoint holds more than half its hold limit (its send plus one
    // queued) and claims leave it out; the later sends are answered slowly, so the refill claims
    // take the older backlog: the first outcome is recorded before any claim sees the requeued row.
    const pigeon = await startPigeon({ PIGEON_ENDPOINT_CONCURRENCY: "1" });
    const sink = await Sink.start();
    try {
      let answerFirst: (() => void) | undefined;
      sink.behaviour = (_req, res) => {
        const answer = () => {
          res.writeHead(200);
          res.end("ok");
        };
        // Hold the first request until the test has resent it.
        if (answerFirst === undefined) answerFirst = answer;
        else setTimeout(answer, 100);
      };
      const app = await pigeon.svix.application.create({ name: "Busy" });
      const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
      const ids: string[] = [];
      for (let i = 0; i < 6; i++)
        ids.push((await pigeon.svix.message.create(app.id, { eventType: "busy.test", payload: { i } })).id);
      await sink.waitFor(1, 5_000);
      await waitUntil(() => pigeon.engine.dispatcher.stats.owned >= 2, 5_000, "a second delivery held");
      const inFlight = sink.received[0]!.headers["webhook-id"]!;
      expect(inFlight).toBe(ids[0]);

      await pigeon.svix.messageAttempt.resend(app.id, inFlight, ep.id);
      answerFirst!();

      await sink.waitFor(ids.length + 1, 5_000);
      const sends = (id: string) => sink.received.filter((r) => r.headers["webhook-id"] === id).length;
      await waitUntil(
        async () => (await pigeon.engine.store.getDelivery(inFlight, ep.id))?.status === "succeeded",
        5_000,
        "the resend recorded",
      );
      // Nothing more comes (a double send of the requeued row would show here).
      await new Promise((r) => setTimeout(r, 300));
      expect(ids.map(sends)).toEqual([2, 1, 1, 1, 1, 1]);
      expect(await pigeon.engine.store.getDelivery(inFlight, ep.id)).toMatchObject({
        status: "succeeded",
        manual: true,
        attempts: 2,
      });
      const attempts = (await pigeon.svix.messageAttempt.listByMsg(app.id, inFlight)).data;
      expect(attempts.map((a) => a.triggerType).sort()).toEqual([0, 1]);
    } finally {
      await pigeon.close();
      await sink.close();
    }
  });

  it("claimed again while in flight: the resend's own outcome decides the row (its failure is retried)", async () => {
    // An idle endpoint: the resend's claim takes the requeued row while the first send is still
    // unanswered. The first send succeeds, the resend's send fails: it must be retried, not left
    // 'succeeded' by the first outcome.
    const pigeon = await startPigeon();
    const sink = await Sink.start();
    try {
      const app = await pigeon.svix.application.create({ name: "Idle" });
      const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
      let msgId = "";
      let n = 0;
      sink.behaviour = (_req, res) => {
        n += 1;
        if (n === 1) {
          void pigeon.svix.messageAttempt.resend(app.id, msgId, ep.id).then(() => {
            res.writeHead(200);
            res.end("ok");
          });
          return;
        }
        res.writeHead(n === 2 ? 500 : 200);
        res.end(n === 2 ? "boom" : "ok");
      };
      msgId = (await pigeon.svix.message.create(app.id, { eventType: "idle.test", payload: { n: 1 } })).id;
      await sink.waitFor(3, 5_000);
      await waitUntil(
        async () => (await pigeon.engine.store.getDelivery(msgId, ep.id))?.attempts === 3,
        5_000,
        "three attempts recorded",
      );
      await new Promise((r) => setTimeout(r, 300));
      expect(sink.received.map((r) => r.headers["webhook-id"])).toEqual([msgId, msgId, msgId]);
      expect(await pigeon.engine.store.getDelivery(msgId, ep.id)).toMatchObject({
        status: "succeeded",
        attempts: 3,
      });
    } finally {
      await pigeon.close();
      await sink.close();
    }
  });
});
