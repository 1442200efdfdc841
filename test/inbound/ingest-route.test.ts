import { createHmac, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InboundEvent } from "../../src/inbound/types.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import {
  createSource,
  GENERIC_OPTIONS,
  inbox,
  nowSec,
  send,
  signGeneric,
  signGithub,
  signSlack,
  signStandard,
  signStripe,
  whsec,
} from "./helpers.js";

interface Case {
  provider: string;
  secret: string;
  options?: Record<string, unknown>;
  /** Signed headers for `body` with `secret` at unix time `ts`. */
  sign: (secret: string, body: string, ts: number) => Record<string, string>;
  /** Whether the scheme signs a timestamp (so a stale one must be refused). */
  timestamped: boolean;
  /** The event type Pigeon should read from the request. */
  eventType: string;
  body: (n: string) => string;
}

const CASES: Case[] = [
  {
    provider: "standard-webhooks",
    secret: whsec(),
    sign: (secret, body, ts) =>
      signStandard(secret, `msg_${createHmac("md5", body).digest("hex")}`, body, ts),
    timestamped: true,
    eventType: "employee.created",
    body: (n) => JSON.stringify({ type: "employee.created", data: { n } }),
  },
  {
    provider: "github",
    secret: "It's a Secret to Everybody",
    sign: (secret, body) => signGithub(secret, body, randomUUID(), "pull_request"),
    timestamped: false,
    eventType: "pull_request",
    body: (n) => JSON.stringify({ action: "opened", number: n }),
  },
  {
    provider: "stripe",
    secret: "whsec_stripe_test_secret",
    sign: (secret, body, ts) => signStripe(secret, body, ts),
    timestamped: true,
    eventType: "invoice.paid",
    body: (n) => JSON.stringify({ id: `evt_${n}`, object: "event", type: "invoice.paid", created: nowSec() }),
  },
  {
    provider: "slack",
    secret: "8f742231b10e8888abcd99yyyzzz85a5",
    sign: (secret, body, ts) => signSlack(secret, body, ts),
    timestamped: true,
    eventType: "app_mention",
    body: (n) =>
      JSON.stringify({
        type: "event_callback",
        event_id: `Ev${n}`,
        event_time: nowSec(),
        event: { type: "app_mention" },
      }),
  },
  {
    provider: "generic-hmac",
    secret: "acme-secret",
    options: { ...GENERIC_OPTIONS },
    sign: (secret, body, ts) => signGeneric(secret, body, ts, `g-${createHmac("md5", body).digest("hex")}`),
    timestamped: true,
    eventType: "order.shipped",
    body: (n) => JSON.stringify({ type: "order.shipped", order: n }),
  },
];

describe("ingest route: verify, persist, then answer", () => {
  let p: TestPigeon;
  const handled: InboundEvent[] = [];

  beforeAll(async () => {
    p = await startPigeon();
    p.engine.inbound.on("*", (event) => {
      handled.push(event);
    });
  });
  afterAll(async () => {
    await p.close();
  });

  for (const c of CASES) {
    describe(c.provider, () => {
      let sourceId: string;
      let path: string;
      beforeAll(async () => {
        const source = await createSource(p, {
          name: c.provider,
          provider: c.provider,
          secrets: [c.secret],
          options: c.options ?? {},
        });
        sourceId = source.id;
        path = source.ingestPath;
      });

      it("accepts a good signature with 200 and stores the request byte for byte", async () => {
        const body = c.body(randomUUID());
        const res = await send(p, `${path}?attempt=1`, body, c.sign(c.secret, body, nowSec()));
        expect(res.status).toBe(200);
        const itemId = res.headers.get("pigeon-inbox-item");
        expect(itemId).toMatch(/^in_/);
        expect(res.headers.get("pigeon-inbox-status")).toBe("received");

        const item = (await (
          await p.request("GET", `/api/v1/source/${sourceId}/inbox/${itemId}`)
        ).json()) as Record<string, unknown>;
        expect(item.body).toBe(body);
        expect(item.method).toBe("POST");
        expect(item.path).toBe(path);
        expect(item.query).toBe("attempt=1");
        expect(item.bodyKind).toBe("json");
        expect(item.eventType).toBe(c.eventType);
        expect((item.headers as Record<string, string>)["content-type"]).toBe("application/json");
        await waitUntil(() => handled.some((e) => e.id === itemId), 10_000, "the handler");
        expect(handled.find((e) => e.id === itemId)?.text()).toBe(body);
      });

      it("refuses a changed body, a wrong secret and (where signed) a stale timestamp with 401", async () => {
        const before = handled.length;
        const stored = (await inbox(p, sourceId)).length;
        const body = c.body(randomUUID());
        const headers = c.sign(c.secret, body, nowSec());

        const tampered = await send(p, path, body.replace("}", ',"x":1}'), headers);
        expect(tampered.status).toBe(401);
        const tamperedBody = (await tampered.json()) as { code: string; detail: string };
        expect(tamperedBody.code).toBe("invalid_signature");
        expect(tamperedBody.detail.length).toBeGreaterThan(10);

        const wrong = await send(p, path, body, c.sign(`${c.secret}-wrong`, body, nowSec()));
        expect(wrong.status).toBe(401);
        expect(((await wrong.json()) as { code: string }).code).toBe("invalid_signature");

        const unsigned = await send(p, path, body, { "content-type": "application/json" });
        expect(unsigned.status).toBe(401);
        expect(((await unsigned.json()) as { code: string }).code).toMatch(/^missing_/);

        let refused = 3;
        if (c.timestamped) {
          const stale = await send(p, path, body, c.sign(c.secret, body, nowSec() - 3600));
          expect(stale.status).toBe(401);
          expect(((await stale.json()) as { code: string }).code).toBe("timestamp_out_of_tolerance");
          refused++;
        }

        // Nothing stored, nothing handed on, every refusal counted.
        expect((await inbox(p, sourceId)).length).toBe(stored);
        await new Promise((r) => setTimeout(r, 100));
        expect(handled.length).toBe(before);
        const source = (await (await p.request("GET", `/api/v1/source/${sourceId}`)).json()) as {
          stats: { verificationFailures: number; lastVerificationFailureCode: string | null };
        };
        expect(source.stats.verificationFailures).toBe(refused);
        expect(source.stats.lastVerificationFailureCode).not.toBeNull();
      });
    });
  }

  it("verifies against every configured secret (rotation)", async () => {
    const old = whsec();
    const current = whsec();
    const source = await createSource(p, {
      name: "rotating",
      provider: "standard-webhooks",
      secrets: [current, old],
    });
    for (const secret of [old, current]) {
      const body = JSON.stringify({ type: "t", n: secret });
      const res = await send(p, source.ingestPath, body, signStandard(secret, `msg_${randomUUID()}`, body));
      expect(res.status).toBe(200);
    }
    const res = await send(p, source.ingestPath, "{}", signStandard(whsec(), "msg_x", "{}"));
    expect(res.status).toBe(401);
  });

  it("honours a per-source timestamp tolerance", async () => {
    const secret = whsec();
    const source = await createSource(p, {
      name: "tolerant",
      provider: "standard-webhooks",
      secrets: [secret],
      options: { toleranceSec: 7200 },
    });
    const body = "{}";
    const res = await send(
      p,
      source.ingestPath,
      body,
      signStandard(secret, "msg_old", body, nowSec() - 3600),
    );
    expect(res.status).toBe(200);
  });

  it("reaches a source by its uid as well as its id", async () => {
    const secret = "gh-secret";
    await createSource(p, { uid: "github-main", name: "gh", provider: "github", secrets: [secret] });
    const body = JSON.stringify({ zen: "Keep it logically awesome." });
    const res = await send(p, "/in/github-main", body, signGithub(secret, body, randomUUID(), "ping"));
    expect(res.status).toBe(200);
  });
});
