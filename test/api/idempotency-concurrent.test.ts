import { request } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon, TOKEN } from "../helpers/pigeon.js";

/**
 * The same Idempotency-Key sent again while the first request is still being handled (a client
 * that timed out and retried): one message, and every answer is the first one's.
 */
describe("Idempotency-Key under concurrent requests", () => {
  let pigeon: TestPigeon;
  let appId: string;
  beforeAll(async () => {
    pigeon = await startPigeon();
    appId = (await pigeon.svix.application.create({ name: "Idem" })).id;
  });
  afterAll(async () => {
    await pigeon.close();
  });

  /** Sends the headers at once and the body only when `release` resolves. */
  function postLater(path: string, body: string, key: string, release: Promise<void>) {
    const { port } = new URL(pigeon.baseUrl);
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = request(
        {
          host: "127.0.0.1",
          port: Number(port),
          path,
          method: "POST",
          headers: {
            authorization: `Bearer ${TOKEN}`,
            "content-type": "application/json",
            "content-length": Buffer.byteLength(body),
            "idempotency-key": key,
          },
        },
        (res) => {
          let text = "";
          res.on("data", (d) => {
            text += d;
          });
          res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on("error", reject);
      req.flushHeaders();
      void release.then(() => req.end(body));
    });
  }

  it("creates one message for three requests with one key that overlap", async () => {
    let release: () => void = () => {};
    const bodiesGo = new Promise<void>((resolve) => {
      release = resolve;
    });
    const body = JSON.stringify({ eventType: "idem.race", payload: { n: 1 } });
    const answers = [1, 2, 3].map(() => postLater(`/api/v1/app/${appId}/msg`, body, "k-race", bodiesGo));
    // Every request's headers are in (and its key looked up) before any body arrives.
    await new Promise((resolve) => setTimeout(resolve, 200));
    release();
    const results = await Promise.all(answers);
    expect(results.map((r) => r.status)).toEqual([202, 202, 202]);
    const ids = new Set(results.map((r) => (JSON.parse(r.text) as { id: string }).id));
    expect(ids.size).toBe(1);
    const listed = await pigeon.svix.message.list(appId);
    expect(listed.data.filter((m) => m.eventType === "idem.race")).toHaveLength(1);
  });
});
