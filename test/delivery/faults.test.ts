import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";

interface AttemptJson {
  status: number;
  responseStatusCode: number;
  errorCode: string | null;
  response: string;
  timestamp: string;
}

/** Each fault a receiver can show, through the real dispatcher, recorded on the attempt. */
describe("delivery faults", () => {
  let pigeon: TestPigeon;
  let sink: Sink;
  let appId: string;

  beforeEach(async () => {
    pigeon = await startPigeon();
    sink = await Sink.start();
    appId = (await pigeon.svix.application.create({ name: "Faults" })).id;
  });
  afterEach(async () => {
    await pigeon.close();
    await sink.close();
  });

  async function endpointFor(url: string, extra: Record<string, unknown> = {}): Promise<string> {
    const res = await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, { url, ...extra });
    expect(res.status).toBe(201);
    return ((await res.json()) as { id: string }).id;
  }

  async function send(): Promise<string> {
    return (await pigeon.svix.message.create(appId, { eventType: "fault.test", payload: { n: 1 } })).id;
  }

  async function attempts(msgId: string): Promise<AttemptJson[]> {
    const res = await pigeon.request("GET", `/api/v1/app/${appId}/attempt/msg/${msgId}`);
    return ((await res.json()) as { data: AttemptJson[] }).data.reverse();
  }

  it("500: retried on the schedule, then failed; every attempt recorded", async () => {
    sink.behaviour = (_req, res) => {
      res.writeHead(500);
      res.end("boom");
    };
    await endpointFor(sink.url());
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length === 4, 10_000, "4 attempts");
    const list = await attempts(msgId);
    expect(list.map((a) => [a.status, a.responseStatusCode, a.errorCode, a.response])).toEqual(
      Array(4).fill([2, 500, "http_status", "boom"]),
    );
    // The gaps follow the 100 ms, 200 ms, 300 ms schedule (jitter is 0 in tests).
    const times = list.map((a) => Date.parse(a.timestamp));
    expect(times[1]! - times[0]!).toBeGreaterThanOrEqual(100);
    expect(times[2]! - times[1]!).toBeGreaterThanOrEqual(200);
    expect(times[3]! - times[2]!).toBeGreaterThanOrEqual(300);
    await new Promise((r) => setTimeout(r, 500));
    expect(sink.received).toHaveLength(4);
  });

  it("a hang past the timeout is recorded as timeout", async () => {
    sink.behaviour = () => {
      // never answer
    };
    await endpointFor(sink.url(), { timeoutMs: 1000 });
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length >= 1, 10_000, "an attempt");
    const [first] = await attempts(msgId);
    expect(first).toMatchObject({ status: 2, responseStatusCode: 0, errorCode: "timeout" });
  });

  it("a reset connection is recorded as connection_reset", async () => {
    sink.behaviour = (req, res) => {
      req.headers; // answer nothing: destroy the socket mid-request
      res.socket?.destroy();
    };
    await endpointFor(sink.url());
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length >= 1, 10_000, "an attempt");
    expect((await attempts(msgId))[0]).toMatchObject({ status: 2, errorCode: "connection_reset" });
  });

  it("a refused connection is recorded as connection_refused", async () => {
    const closed: Server = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await endpointFor(`http://127.0.0.1:${port}/hook`);
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length >= 1, 10_000, "an attempt");
    expect((await attempts(msgId))[0]).toMatchObject({ status: 2, errorCode: "connection_refused" });
  });

  it("410 disables the endpoint and records endpoint.disabled", async () => {
    sink.behaviour = (_req, res) => {
      res.writeHead(410);
      res.end("gone");
    };
    const endpointId = await endpointFor(sink.url());
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length === 1, 10_000, "an attempt");
    await waitUntil(async () => (await pigeon.svix.endpoint.get(appId, endpointId)).disabled === true);
    await new Promise((r) => setTimeout(r, 400));
    expect(await attempts(msgId)).toHaveLength(1);
    const events = (await (await pigeon.request("GET", "/api/v1/operational-event")).json()) as {
      data: { type: string; data: { endpointId: string } }[];
    };
    expect(events.data).toEqual([
      expect.objectContaining({ type: "endpoint.disabled", data: expect.objectContaining({ endpointId }) }),
    ]);
    // A disabled endpoint is not sent new messages.
    await send();
    await new Promise((r) => setTimeout(r, 300));
    expect(sink.received).toHaveLength(1);
  });

  it("429 with Retry-After waits at least that long before the next try", async () => {
    let calls = 0;
    sink.behaviour = (_req, res) => {
      calls += 1;
      if (calls === 1) {
        res.writeHead(429, { "retry-after": "1" });
        res.end("slow down");
      } else {
        res.writeHead(200);
        res.end("ok");
      }
    };
    await endpointFor(sink.url());
    const msgId = await send();
    await sink.waitFor(2, 10_000);
    const gap = sink.received[1]!.receivedAt - sink.received[0]!.receivedAt;
    expect(gap).toBeGreaterThanOrEqual(990);
    await waitUntil(async () => (await attempts(msgId)).length === 2);
    const list = await attempts(msgId);
    expect(list[0]).toMatchObject({ status: 2, responseStatusCode: 429, errorCode: "http_status" });
    expect(list[1]).toMatchObject({ status: 0, responseStatusCode: 200 });
  });

  it("301 is a failure and the redirect is not followed", async () => {
    const target = await Sink.start();
    try {
      sink.behaviour = (_req, res) => {
        res.writeHead(301, { location: target.url() });
        res.end();
      };
      await endpointFor(sink.url());
      const msgId = await send();
      await waitUntil(async () => (await attempts(msgId)).length >= 1, 10_000, "an attempt");
      expect((await attempts(msgId))[0]).toMatchObject({
        status: 2,
        responseStatusCode: 301,
        errorCode: "http_status",
      });
      expect(target.received).toHaveLength(0);
    } finally {
      await target.close();
    }
  });

  it("stores at most 64 KiB of a response body", async () => {
    sink.behaviour = (_req, res) => {
      res.writeHead(200);
      res.end("x".repeat(200 * 1024));
    };
    await endpointFor(sink.url());
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length === 1, 10_000, "an attempt");
    expect((await attempts(msgId))[0]!.response.length).toBe(64 * 1024);
  });

  it("a loopback endpoint is refused as ssrf_blocked when loopback is not allow-listed", async () => {
    await pigeon.close();
    pigeon = await startPigeon({ PIGEON_ALLOWED_NETWORKS: "" });
    appId = (await pigeon.svix.application.create({ name: "Guarded" })).id;
    await endpointFor(sink.url());
    const msgId = await send();
    await waitUntil(async () => (await attempts(msgId)).length >= 1, 10_000, "an attempt");
    expect((await attempts(msgId))[0]).toMatchObject({ status: 2, errorCode: "ssrf_blocked" });
    expect(sink.received).toHaveLength(0);
  });
});

describe("automatic disabling", () => {
  it("disables an endpoint failing with no success for longer than PIGEON_DISABLE_AFTER", async () => {
    const pigeon = await startPigeon({
      PIGEON_DISABLE_AFTER: "300ms",
      PIGEON_RETRY_SCHEDULE: "100ms,100ms,100ms,100ms,100ms,100ms",
    });
    const sink = await Sink.start((_req, res) => {
      res.writeHead(503);
      res.end();
    });
    try {
      const app = await pigeon.svix.application.create({ name: "D" });
      const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
      await pigeon.svix.message.create(app.id, { eventType: "a.b", payload: {} });
      await waitUntil(
        async () => (await pigeon.svix.endpoint.get(app.id, ep.id)).disabled === true,
        10_000,
        "disabled",
      );
      const events = (await (await pigeon.request("GET", "/api/v1/operational-event")).json()) as {
        data: { type: string; data: { reason: string } }[];
      };
      expect(events.data.map((e) => [e.type, e.data.reason])).toEqual([["endpoint.disabled", "failing"]]);
      // Fewer than the 7 tries the schedule allows: disabling cut the retries short.
      expect(sink.received.length).toBeLessThan(7);
    } finally {
      await pigeon.close();
      await sink.close();
    }
  });
});

describe("resend while the first send is still in flight", () => {
  it("sends again once the first outcome is recorded, instead of losing the resend", async () => {
    const pigeon = await startPigeon();
    const sink = await Sink.start();
    try {
      const app = await pigeon.svix.application.create({ name: "Race" });
      const ep = await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
      let msgId = "";
      let resent = false;
      sink.behaviour = (_req, res) => {
        if (!resent) {
          resent = true;
          // Queue a resend while this first request is still unanswered, then answer it.
          void pigeon.svix.messageAttempt.resend(app.id, msgId, ep.id).then(() => {
            res.writeHead(200);
            res.end("ok");
          });
          return;
        }
        res.writeHead(200);
        res.end("ok");
      };
      msgId = (await pigeon.svix.message.create(app.id, { eventType: "race.test", payload: { n: 1 } })).id;
      await sink.waitFor(2, 10_000);
      expect(sink.received.map((r) => r.headers["webhook-id"])).toEqual([msgId, msgId]);
      await waitUntil(
        async () => (await pigeon.svix.messageAttempt.listByMsg(app.id, msgId)).data.length === 2,
      );
      const attempts = (await pigeon.svix.messageAttempt.listByMsg(app.id, msgId)).data;
      expect(attempts.map((a) => a.triggerType).sort()).toEqual([0, 1]);
    } finally {
      await pigeon.close();
      await sink.close();
    }
  });
});

describe("a retry while other sends are in flight", () => {
  it("is sent when it comes due, not at the next poll", async () => {
    // The poll is far off, and a hung endpoint keeps a send in flight the whole time, so the only
    // thing that can bring the retry on time is the worker's own wake for it.
    const pigeon = await startPigeon({ PIGEON_POLL_INTERVAL: "20s", PIGEON_REQUEST_TIMEOUT: "25s" });
    const sink = await Sink.start();
    try {
      let failedOnce = false;
      sink.behaviour = (req, res) => {
        if (req.url.startsWith("/hang")) return;
        if (!failedOnce) {
          failedOnce = true;
          res.writeHead(503);
          res.end("busy");
          return;
        }
        res.writeHead(200);
        res.end("ok");
      };
      const app = await pigeon.svix.application.create({ name: "Retry wake" });
      await pigeon.svix.endpoint.create(app.id, { url: sink.url("/hang") });
      await pigeon.svix.endpoint.create(app.id, { url: sink.url("/flaky") });
      await pigeon.svix.message.create(app.id, { eventType: "retry.wake", payload: { n: 1 } });
      const flaky = () => sink.received.filter((r) => r.url.startsWith("/flaky"));
      await waitUntil(() => flaky().length === 2, 5_000, "the retry (schedule: 100 ms)");
      const [first, second] = flaky();
      expect(second!.receivedAt - first!.receivedAt).toBeGreaterThanOrEqual(100);
      expect(second!.receivedAt - first!.receivedAt).toBeLessThan(3_000);
      expect(sink.received.filter((r) => r.url.startsWith("/hang"))).toHaveLength(1);
    } finally {
      // The sink first: closing it ends the hung send, which Pigeon's stop waits for.
      await sink.close();
      await pigeon.close();
    }
  });
});
