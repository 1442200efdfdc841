import { sign as edSign, generateKeyPairSync } from "node:crypto";
import { Webhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { describe, expect, it } from "vitest";
import {
  answerHandshake,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

const SECRET_A = `whsec_${Buffer.from("pigeon-test-secret-a-0123456789").toString("base64")}`;
const SECRET_B = `whsec_${Buffer.from("pigeon-test-secret-b-9876543210").toString("base64")}`;
const WRONG = `whsec_${Buffer.from("someone-else-entirely-000000000").toString("base64")}`;

function keyOf(secret: string): Buffer {
  return Buffer.from(secret.slice("whsec_".length), "base64");
}

function signed(
  secret: string,
  body: string,
  ts: number,
  id = "msg_2abc",
  family = "webhook",
): ReturnType<typeof req> {
  const sig = hmac("sha256", keyOf(secret), `${id}.${ts}.${body}`).toString("base64");
  return req({
    headers: {
      [`${family}-id`]: id,
      [`${family}-timestamp`]: String(ts),
      [`${family}-signature`]: `v1,${sig}`,
      "content-type": "application/json",
    },
    body,
  });
}

describe("standard-webhooks", () => {
  forbidNetwork();

  schemeContract({
    provider: "standard-webhooks",
    secrets: [SECRET_A, SECRET_B],
    wrongSecret: WRONG,
    body: JSON.stringify({ type: "employee.created", data: { id: "emp_1", name: "Zoë" } }),
    sign: (secret, body, ts) => signed(secret, body, ts),
    signatureHeader: "webhook-signature",
    timestamp: "both",
  });

  describe("published vector (standard-webhooks webhook.test.ts)", () => {
    const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const headers = {
      "webhook-id": "msg_p5jXN8AQM9LWM0D4loKWxJek",
      "webhook-timestamp": "1614265330",
      "webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    };
    const body = '{"test": 2432232314}';

    it("verifies with webhook-* headers", () => {
      expectOk(verifyInbound("standard-webhooks", req({ headers, body }), [secret], {}, 1614265330));
    });

    it("verifies with svix-* headers", () => {
      const svix = {
        "svix-id": headers["webhook-id"],
        "svix-timestamp": headers["webhook-timestamp"],
        "svix-signature": headers["webhook-signature"],
      };
      expectOk(verifyInbound("standard-webhooks", req({ headers: svix, body }), [secret], {}, 1614265330));
    });

    it("accepts the right signature among several space-separated ones", () => {
      const many = {
        ...headers,
        "webhook-signature": `v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= v2,abc ${headers["webhook-signature"]} v1a,xyz`,
      };
      expectOk(verifyInbound("standard-webhooks", req({ headers: many, body }), [secret], {}, 1614265330));
    });

    it("rejects it once it is older than the tolerance", () => {
      expectFail(
        verifyInbound("standard-webhooks", req({ headers, body }), [secret], {}, 1614265330 + 301),
        "timestamp_out_of_tolerance",
      );
    });

    it("rejects a v1 signature presented under another version", () => {
      const v2 = { ...headers, "webhook-signature": headers["webhook-signature"].replace("v1,", "v2,") };
      expectFail(
        verifyInbound("standard-webhooks", req({ headers: v2, body }), [secret], {}, 1614265330),
        "invalid_signature",
      );
    });
  });

  describe("cross-check with the standardwebhooks and svix packages", () => {
    const bodies = ['{"a":1}', JSON.stringify({ name: "Zoë 🐦", n: [1, 2, 3] }), ""];
    for (const body of bodies) {
      it(`accepts what Webhook.sign produces (${JSON.stringify(body).slice(0, 20)})`, () => {
        const sig = new Webhook(SECRET_A).sign("msg_x1", new Date(NOW * 1000), body);
        const request = req({
          headers: { "webhook-id": "msg_x1", "webhook-timestamp": String(NOW), "webhook-signature": sig },
          body,
        });
        expectOk(verifyInbound("standard-webhooks", request, [SECRET_A], {}, NOW));
        const svixSig = new SvixWebhook(SECRET_A).sign("msg_x1", new Date(NOW * 1000), body);
        expect(svixSig).toBe(sig);
      });
    }

    it("produces signatures the standardwebhooks package verifies", () => {
      const now = Math.floor(Date.now() / 1000);
      const request = signed(SECRET_B, '{"ok":true}', now, "msg_roundtrip");
      const headers = request.headers as Record<string, string>;
      expect(new Webhook(SECRET_B).verify('{"ok":true}', headers)).toEqual({ ok: true });
      expectOk(verifyInbound("standard-webhooks", request, [SECRET_B], {}, now));
    });

    it("accepts an unprefixed base64 secret like the reference library", () => {
      const bare = SECRET_A.slice("whsec_".length);
      const sig = new Webhook(bare).sign("msg_bare", new Date(NOW * 1000), "{}");
      const request = req({
        headers: { "webhook-id": "msg_bare", "webhook-timestamp": String(NOW), "webhook-signature": sig },
        body: "{}",
      });
      expectOk(verifyInbound("standard-webhooks", request, [bare], {}, NOW));
    });
  });

  it("verifies on the raw bytes, including non-UTF-8 bodies", () => {
    const body = Buffer.from([0x7b, 0xff, 0xfe, 0x00, 0x7d]);
    const sig = hmac(
      "sha256",
      keyOf(SECRET_A),
      Buffer.concat([Buffer.from(`msg_bin.${NOW}.`), body]),
    ).toString("base64");
    const request = req({
      headers: {
        "webhook-id": "msg_bin",
        "webhook-timestamp": String(NOW),
        "webhook-signature": `v1,${sig}`,
      },
      body,
    });
    expectOk(verifyInbound("standard-webhooks", request, [SECRET_A], {}, NOW));
  });

  it("verifies v1a (ed25519) signatures against a whpk_ public key", () => {
    const { publicKey, privateKey } = generateKeyPairSync("ed25519");
    const raw = publicKey.export({ format: "der", type: "spki" }).subarray(-32);
    const whpk = `whpk_${raw.toString("base64")}`;
    const body = '{"asym":true}';
    const sig = edSign(null, Buffer.from(`msg_ed.${NOW}.${body}`), privateKey).toString("base64");
    const request = req({
      headers: {
        "webhook-id": "msg_ed",
        "webhook-timestamp": String(NOW),
        "webhook-signature": `v1a,${sig}`,
      },
      body,
    });
    expectOk(verifyInbound("standard-webhooks", request, [whpk], {}, NOW));
    expectFail(
      verifyInbound("standard-webhooks", { ...request, rawBody: Buffer.from("{}") }, [whpk], {}, NOW),
      "invalid_signature",
    );
    // a v1a signature is never checked against an HMAC secret, and v1 never against a public key
    expectFail(verifyInbound("standard-webhooks", request, [SECRET_A], {}, NOW), "invalid_signature");
  });

  it("reports missing id and timestamp headers", () => {
    const good = signed(SECRET_A, "{}", NOW);
    const noTs = req({ headers: { ...good.headers, "webhook-timestamp": undefined }, body: "{}" });
    expectFail(verifyInbound("standard-webhooks", noTs, [SECRET_A], {}, NOW), "missing_timestamp");
    const badTs = req({ headers: { ...good.headers, "webhook-timestamp": "yesterday" }, body: "{}" });
    expectFail(verifyInbound("standard-webhooks", badTs, [SECRET_A], {}, NOW), "missing_timestamp");
    const noId = req({ headers: { ...good.headers, "webhook-id": undefined }, body: "{}" });
    expectFail(verifyInbound("standard-webhooks", noId, [SECRET_A], {}, NOW), "missing_signature");
  });

  it("uses webhook-id / svix-id and webhook-timestamp for de-dup and event time", () => {
    expect(inboundEventId("standard-webhooks", signed(SECRET_A, "{}", NOW, "msg_1"))).toBe("msg_1");
    expect(inboundEventId("standard-webhooks", signed(SECRET_A, "{}", NOW, "msg_2", "svix"))).toBe("msg_2");
    expect(inboundEventTimeMs("standard-webhooks", signed(SECRET_A, "{}", NOW))).toBe(NOW * 1000);
    expectOk(
      verifyInbound("standard-webhooks", signed(SECRET_A, "{}", NOW, "msg_2", "svix"), [SECRET_A], {}, NOW),
    );
  });

  describe("Pigeon webhook.verification handshake", () => {
    const nested = JSON.stringify({ type: "webhook.verification", data: { challenge: "ch_4f2a" } });
    const topLevel = JSON.stringify({ type: "webhook.verification", challenge: "ch_top" });

    it("answers 200 {challenge} once the signature verifies", () => {
      const answer = answerHandshake(
        "standard-webhooks",
        signed(SECRET_A, nested, NOW),
        [SECRET_B, SECRET_A],
        {},
        NOW,
      );
      expect(answer).toEqual({
        status: 200,
        headers: { "content-type": "application/json" },
        body: '{"challenge":"ch_4f2a"}',
      });
      const top = answerHandshake("standard-webhooks", signed(SECRET_A, topLevel, NOW), [SECRET_A], {}, NOW);
      expect(top?.status).toBe(200);
      expect(JSON.parse(top!.body)).toEqual({ challenge: "ch_top" });
    });

    it("accepts a challenge signed with the svix package", () => {
      const sig = new SvixWebhook(SECRET_A).sign("msg_hs", new Date(NOW * 1000), nested);
      const request = req({
        headers: { "svix-id": "msg_hs", "svix-timestamp": String(NOW), "svix-signature": sig },
        body: nested,
      });
      expect(answerHandshake("standard-webhooks", request, [SECRET_A], {}, NOW)?.status).toBe(200);
    });

    it("refuses to echo the challenge without a valid signature", () => {
      const forged = answerHandshake("standard-webhooks", signed(WRONG, nested, NOW), [SECRET_A], {}, NOW);
      expect(forged?.status).toBe(401);
      expect(forged?.body).not.toContain("ch_4f2a");
      const unsigned = answerHandshake("standard-webhooks", req({ body: nested }), [SECRET_A], {}, NOW);
      expect(unsigned?.status).toBe(401);
      const stale = answerHandshake(
        "standard-webhooks",
        signed(SECRET_A, nested, NOW - 3600),
        [SECRET_A],
        {},
        NOW,
      );
      expect(stale?.status).toBe(401);
      expect(JSON.parse(stale!.body).error).toBe("timestamp_out_of_tolerance");
    });

    it("is not a handshake for ordinary events", () => {
      expect(
        answerHandshake(
          "standard-webhooks",
          signed(SECRET_A, '{"type":"employee.created"}', NOW),
          [SECRET_A],
          {},
          NOW,
        ),
      ).toBeNull();
    });
  });
});
