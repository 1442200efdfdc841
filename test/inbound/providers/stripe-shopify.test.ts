import { describe, expect, it } from "vitest";
import {
  answerHandshake,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

function stripeSigned(secret: string, body: string, ts: number, extra = "") {
  const v1 = hmac("sha256", secret, `${ts}.${body}`).toString("hex");
  return req({ headers: { "stripe-signature": `t=${ts},v1=${v1}${extra}` }, body });
}

describe("stripe", () => {
  forbidNetwork();

  schemeContract({
    provider: "stripe",
    secrets: ["whsec_stripe_one", "whsec_stripe_two"],
    wrongSecret: "whsec_stripe_wrong",
    body: JSON.stringify({ id: "evt_1", object: "event", created: NOW, type: "charge.succeeded" }, null, 2),
    sign: (secret, body, ts) => stripeSigned(secret, body, ts),
    signatureHeader: "stripe-signature",
    timestamp: "past",
  });

  it("matches the stripe-node HMAC primitive vector", () => {
    expect(hmac("sha256", "test_secret", '{"obj1":"hello","obj2":"world"}').toString("hex")).toBe(
      "bebb1a643997f419b315ddba19e6f5411e1ce7f810ba6d3617ce72823092f363",
    );
  });

  it("passes the full-header vector (secret used with its whsec_ prefix, not base64-decoded)", () => {
    const body = JSON.stringify({ id: "evt_test_webhook", object: "event" }, null, 2);
    const request = req({
      headers: {
        "stripe-signature":
          "t=1700000000,v1=4f1cd7feda9826e746b7d482c4badebb657398df1099e1046364f6196a230150",
      },
      body,
    });
    expectOk(verifyInbound("stripe", request, ["whsec_test_secret"], {}, 1700000000));
    expectFail(verifyInbound("stripe", request, ["test_secret"], {}, 1700000000), "invalid_signature");
    expect(inboundEventId("stripe", request)).toBe("evt_test_webhook");
  });

  it("accepts any matching v1 among several, and ignores v0", () => {
    const body = '{"id":"evt_2"}';
    const good = hmac("sha256", "whsec_x", `${NOW}.${body}`).toString("hex");
    const header = `t=${NOW},v1=${"0".repeat(64)},v1=${good},v0=${"1".repeat(64)}`;
    expectOk(
      verifyInbound("stripe", req({ headers: { "stripe-signature": header }, body }), ["whsec_x"], {}, NOW),
    );
    const onlyV0 = `t=${NOW},v0=${good}`;
    expectFail(
      verifyInbound("stripe", req({ headers: { "stripe-signature": onlyV0 }, body }), ["whsec_x"], {}, NOW),
      "missing_signature",
    );
  });

  it("reports a header without t=", () => {
    const header = `v1=${"0".repeat(64)}`;
    expectFail(
      verifyInbound(
        "stripe",
        req({ headers: { "stripe-signature": header }, body: "{}" }),
        ["whsec_x"],
        {},
        NOW,
      ),
      "missing_timestamp",
    );
  });

  it("takes the event id and created time from the body", () => {
    const request = stripeSigned("whsec_x", JSON.stringify({ id: "evt_9", created: 1690000000 }), NOW);
    expect(inboundEventId("stripe", request)).toBe("evt_9");
    expect(inboundEventTimeMs("stripe", request)).toBe(1690000000 * 1000);
    expect(inboundEventTimeMs("stripe", stripeSigned("whsec_x", "{}", NOW))).toBe(NOW * 1000);
    expect(answerHandshake("stripe", request, ["whsec_x"])).toBeNull();
  });
});

function shopifySigned(secret: string, body: string, headers: Record<string, string> = {}) {
  return req({
    headers: { "x-shopify-hmac-sha256": hmac("sha256", secret, body).toString("base64"), ...headers },
    body,
  });
}

describe("shopify", () => {
  forbidNetwork();

  schemeContract({
    provider: "shopify",
    secrets: ["shpss_one", "shpss_two"],
    wrongSecret: "shpss_wrong",
    body: JSON.stringify({ id: 820982911946154500, email: "jon@example.com", total_price: "10.00" }),
    sign: (secret, body) => shopifySigned(secret, body),
    signatureHeader: "x-shopify-hmac-sha256",
    timestamp: false,
  });

  it("passes the local vector", () => {
    const request = req({
      headers: { "x-shopify-hmac-sha256": "plW8VGqq0nDMIEhDqaNNW99asdUCy7EIqLZVcQwtAZ0=" },
      body: '{"id":1}',
    });
    expectOk(verifyInbound("shopify", request, ["shop-secret"], {}, NOW));
  });

  it("accepts the Events API header names without X-", () => {
    const body = '{"id":1}';
    const request = req({
      headers: {
        "shopify-hmac-sha256": "plW8VGqq0nDMIEhDqaNNW99asdUCy7EIqLZVcQwtAZ0=",
        "shopify-event-id": "evt-events-api",
        "shopify-triggered-at": "2024-01-02T03:04:05.678Z",
      },
      body,
    });
    expectOk(verifyInbound("shopify", request, ["shop-secret"], {}, NOW));
    expect(inboundEventId("shopify", request)).toBe("evt-events-api");
    expect(inboundEventTimeMs("shopify", request)).toBe(Date.parse("2024-01-02T03:04:05.678Z"));
  });

  it("prefers X-Shopify-Event-Id, then X-Shopify-Webhook-Id; event time from X-Shopify-Triggered-At", () => {
    const both = shopifySigned("s", "{}", {
      "x-shopify-event-id": "98880550-7158-44d4-b7cd-2c97c8a091b5",
      "x-shopify-webhook-id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
      "x-shopify-triggered-at": "2023-03-29T18:00:27.877041743Z",
    });
    expect(inboundEventId("shopify", both)).toBe("98880550-7158-44d4-b7cd-2c97c8a091b5");
    expect(inboundEventTimeMs("shopify", both)).toBe(Date.parse("2023-03-29T18:00:27.877Z"));
    const webhookOnly = shopifySigned("s", "{}", { "x-shopify-webhook-id": "b54557e4" });
    expect(inboundEventId("shopify", webhookOnly)).toBe("b54557e4");
  });
});
