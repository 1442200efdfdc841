import { generateKeyPairSync, sign } from "node:crypto";
import { describe, expect, it } from "vitest";
import { inboundEventId, inboundEventTimeMs, verifyInbound } from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract, withBody } from "./helpers.js";

const PUBLIC_KEY =
  "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g==";
const SIGNATURE =
  "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=";
const TIMESTAMP = "1600112502";
const PAYLOAD = `${JSON.stringify([
  {
    email: "hello@world.com",
    event: "dropped",
    reason: "Bounced Address",
    sg_event_id: "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    sg_message_id: "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
    "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>",
    timestamp: 1600112492,
  },
])}\r\n`;

function vectorRequest(body = PAYLOAD, signature = SIGNATURE) {
  return req({
    headers: {
      "x-twilio-email-event-webhook-signature": signature,
      "x-twilio-email-event-webhook-timestamp": TIMESTAMP,
      "content-type": "application/json",
    },
    body,
  });
}

function keyPair() {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  return {
    publicB64: publicKey.export({ format: "der", type: "spki" }).toString("base64"),
    privateKey,
    publicKey,
  };
}

describe("sendgrid", () => {
  forbidNetwork();
  const keys = { a: keyPair(), b: keyPair(), wrong: keyPair() };
  const privateFor = new Map([keys.a, keys.b, keys.wrong].map((k) => [k.publicB64, k.privateKey]));

  schemeContract({
    provider: "sendgrid",
    secrets: [keys.a.publicB64, keys.b.publicB64],
    wrongSecret: keys.wrong.publicB64,
    body: `${JSON.stringify([{ email: "a@example.test", event: "delivered", sg_event_id: "sg1", timestamp: NOW }])}\r\n`,
    sign: (publicB64, body, ts) => {
      const sig = sign("sha256", Buffer.from(`${ts}${body}`), privateFor.get(publicB64)!).toString("base64");
      return req({
        headers: {
          "x-twilio-email-event-webhook-signature": sig,
          "x-twilio-email-event-webhook-timestamp": String(ts),
        },
        body,
      });
    },
    signatureHeader: "x-twilio-email-event-webhook-signature",
    timestamp: "past",
  });

  it("passes the published vector (trailing CRLF included)", () => {
    expectOk(verifyInbound("sendgrid", vectorRequest(), [PUBLIC_KEY], {}, 1600112502));
    expectFail(
      verifyInbound("sendgrid", vectorRequest(PAYLOAD.trimEnd()), [PUBLIC_KEY], {}, 1600112502),
      "invalid_signature",
    );
    const otherKey =
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEqTxd43gyp8IOEto2LdIfjRQrIbsd4SXZkLW6jDutdhXSJCWHw8REntlo7aNDthvj+y7GjUuFDb/R1NGe1OPzpA==";
    expectFail(verifyInbound("sendgrid", vectorRequest(), [otherKey], {}, 1600112502), "invalid_signature");
    // the vector is old: under the default tolerance it is stale today
    expectFail(
      verifyInbound("sendgrid", vectorRequest(), [PUBLIC_KEY], {}, NOW),
      "timestamp_out_of_tolerance",
    );
    expectOk(verifyInbound("sendgrid", vectorRequest(), [PUBLIC_KEY], { toleranceSec: 0 }, NOW));
  });

  it("passes the older sendgrid-nodejs vector", () => {
    const request = req({
      headers: {
        "x-twilio-email-event-webhook-signature":
          "MEUCIQCtIHJeH93Y+qpYeWrySphQgpNGNr/U+UyUlBkU6n7RAwIgJTz2C+8a8xonZGi6BpSzoQsbVRamr2nlxFDWYNH2j/0=",
        "x-twilio-email-event-webhook-timestamp": "1588788367",
      },
      body: JSON.stringify({ category: "example_payload", event: "test_event", message_id: "message_id" }),
    });
    const key =
      "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEDr2LjtURuePQzplybdC+u4CwrqDqBaWjcMMsTbhdbcwHBcepxo7yAQGhHPTnlvFYPAZFceEu/1FwCM/QmGUhA==";
    expectOk(verifyInbound("sendgrid", request, [key], {}, 1588788367));
  });

  it("rejects a malformed signature and accepts a PEM key", () => {
    expectFail(
      verifyInbound("sendgrid", vectorRequest(PAYLOAD, "bm90IGRlcg=="), [PUBLIC_KEY], {}, 1600112502),
      "invalid_signature",
    );
    const pem = `-----BEGIN PUBLIC KEY-----\n${PUBLIC_KEY}\n-----END PUBLIC KEY-----\n`;
    expectOk(verifyInbound("sendgrid", vectorRequest(), [pem], {}, 1600112502));
  });

  it("reports a secret that is not a public key as unsupported", () => {
    expectFail(verifyInbound("sendgrid", vectorRequest(), ["not a key"], {}, 1600112502), "unsupported");
  });

  it("reports a missing timestamp header", () => {
    const request = vectorRequest();
    delete request.headers["x-twilio-email-event-webhook-timestamp"];
    expectFail(verifyInbound("sendgrid", request, [PUBLIC_KEY], {}, 1600112502), "missing_timestamp");
  });

  it("folds batched sg_event_ids and takes the latest event timestamp", () => {
    expect(inboundEventId("sendgrid", vectorRequest())).toBe(
      "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
    );
    expect(inboundEventTimeMs("sendgrid", vectorRequest())).toBe(1600112492000);
    const batch = req({
      body: JSON.stringify([
        { sg_event_id: "b", timestamp: 5 },
        { sg_event_id: "a", timestamp: 9 },
      ]),
    });
    const reordered = req({
      body: JSON.stringify([
        { sg_event_id: "a", timestamp: 9 },
        { sg_event_id: "b", timestamp: 5 },
      ]),
    });
    expect(inboundEventId("sendgrid", batch)).toMatch(/^sha256:/);
    expect(inboundEventId("sendgrid", batch)).toBe(inboundEventId("sendgrid", reordered));
    expect(inboundEventTimeMs("sendgrid", batch)).toBe(9000);
  });
});

function mailgunBody(
  key: string,
  ts: number,
  token: string,
  eventData: Record<string, unknown> = { id: "evt-mg-1", timestamp: ts },
) {
  const signature = hmac("sha256", key, `${ts}${token}`).toString("hex");
  return JSON.stringify({ signature: { timestamp: String(ts), token, signature }, "event-data": eventData });
}

describe("mailgun", () => {
  forbidNetwork();

  schemeContract({
    provider: "mailgun",
    secrets: ["mg-signing-key-1", "mg-signing-key-2"],
    wrongSecret: "mg-signing-key-x",
    body: "unused: the body is built by sign()",
    sign: (key, _body, ts) =>
      req({
        headers: { "content-type": "application/json" },
        body: mailgunBody(key, ts, "0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f"),
      }),
    removeSignature: (request) => {
      const body = JSON.parse(request.rawBody.toString());
      delete body.signature;
      return withBody(request, JSON.stringify(body));
    },
    timestamp: "past",
    bodySigned: false,
  });

  it("passes the local vector", () => {
    const body = JSON.stringify({
      signature: {
        timestamp: "1770920772",
        token: "e0b5477167110d68991efc6b9f89f0a11066af27834600e123",
        signature: "40f728461859066ef27e4ee5d2cd0c78811407b319b11eb66ff0246d144e5489",
      },
      "event-data": { id: "CPgfbmQMTCKtHW6uIWtuVe", timestamp: 1770920772.123, event: "delivered" },
    });
    const request = req({ headers: { "content-type": "application/json" }, body });
    expectOk(verifyInbound("mailgun", request, ["key-mailgun-signing"], {}, 1770920772));
    expectFail(verifyInbound("mailgun", request, ["key-other"], {}, 1770920772), "invalid_signature");
    expectFail(
      verifyInbound("mailgun", request, ["key-mailgun-signing"], {}, 1770920772 + 301),
      "timestamp_out_of_tolerance",
    );
    expect(inboundEventId("mailgun", request)).toBe("CPgfbmQMTCKtHW6uIWtuVe");
    expect(inboundEventTimeMs("mailgun", request)).toBe(1770920772123);
  });

  it("rejects a tampered token or timestamp (the signed parts)", () => {
    const good = JSON.parse(mailgunBody("k", NOW, "tok-1"));
    good.signature.token = "tok-2";
    expectFail(
      verifyInbound(
        "mailgun",
        req({ headers: { "content-type": "application/json" }, body: JSON.stringify(good) }),
        ["k"],
        {},
        NOW,
      ),
      "invalid_signature",
    );
    const ts = JSON.parse(mailgunBody("k", NOW, "tok-1"));
    ts.signature.timestamp = String(NOW + 1);
    expectFail(
      verifyInbound(
        "mailgun",
        req({ headers: { "content-type": "application/json" }, body: JSON.stringify(ts) }),
        ["k"],
        {},
        NOW,
      ),
      "invalid_signature",
    );
  });

  it("accepts a subaccount's parent-signature", () => {
    const signature = hmac("sha256", "parent-key", `${NOW}tok`).toString("hex");
    const body = JSON.stringify({
      signature: { timestamp: String(NOW), token: "tok", signature: "0".repeat(64) },
      "parent-signature": { timestamp: String(NOW), token: "tok", signature },
      "event-data": { id: "e" },
    });
    expectOk(
      verifyInbound(
        "mailgun",
        req({ headers: { "content-type": "application/json" }, body }),
        ["parent-key"],
        {},
        NOW,
      ),
    );
  });

  it("reads form-encoded and multipart signature fields", () => {
    const signature = hmac("sha256", "k", `${NOW}tok`).toString("hex");
    const form = req({
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        timestamp: String(NOW),
        token: "tok",
        signature,
        recipient: "a@b.test",
      }).toString(),
    });
    expectOk(verifyInbound("mailgun", form, ["k"], {}, NOW));
    expect(inboundEventId("mailgun", form)).toBe("token:tok");
    const boundary = "----pigeonBoundary42";
    const part = (name: string, value: string) =>
      `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
    const multipart = req({
      headers: { "content-type": `multipart/form-data; boundary=${boundary}` },
      body: `${part("recipient", "a@b.test")}${part("timestamp", String(NOW))}${part("token", "tok")}${part("signature", signature)}--${boundary}--\r\n`,
    });
    expectOk(verifyInbound("mailgun", multipart, ["k"], {}, NOW));
    expectFail(verifyInbound("mailgun", multipart, ["other"], {}, NOW), "invalid_signature");
  });

  it("reports a body without a signature", () => {
    expectFail(
      verifyInbound(
        "mailgun",
        req({ headers: { "content-type": "application/json" }, body: '{"event-data":{}}' }),
        ["k"],
        {},
        NOW,
      ),
      "missing_signature",
    );
  });
});
