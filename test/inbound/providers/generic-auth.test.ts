import { describe, expect, it } from "vitest";
import {
  answerGenericHandshake,
  answerHandshake,
  genericOptionsError,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import type { GenericHmacOptions } from "../../../src/inbound/providers/types.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

const BODY_HEX: GenericHmacOptions = {
  header: "X-Signature",
  algorithm: "sha256",
  encoding: "hex",
  prefix: "sha256=",
  signed: "body",
  eventIdHeader: "X-Delivery-Id",
};

const TS_B64: GenericHmacOptions = {
  header: "X-Hook-Signature",
  algorithm: "sha512",
  encoding: "base64",
  signed: "timestamp+body",
  timestampHeader: "X-Hook-Timestamp",
  separator: ":",
  eventIdPointer: "/meta/id",
};

describe("generic-hmac", () => {
  forbidNetwork();

  describe("sha256 hex over the body, with a prefix", () => {
    schemeContract({
      provider: "generic-hmac",
      secrets: ["generic-1", "generic-2"],
      wrongSecret: "generic-x",
      body: '{"meta":{"id":"g1"},"n":1}',
      sign: (secret, body) =>
        req({ headers: { "x-signature": `sha256=${hmac("sha256", secret, body).toString("hex")}` }, body }),
      signatureHeader: "x-signature",
      timestamp: false,
      opts: { generic: BODY_HEX },
    });
  });

  describe("sha512 base64 over timestamp:body", () => {
    schemeContract({
      provider: "generic-hmac",
      secrets: ["generic-1", "generic-2"],
      wrongSecret: "generic-x",
      body: '{"meta":{"id":"g2"}}',
      sign: (secret, body, ts) =>
        req({
          headers: {
            "x-hook-signature": hmac("sha512", secret, `${ts}:${body}`).toString("base64"),
            "x-hook-timestamp": String(ts),
          },
          body,
        }),
      signatureHeader: "x-hook-signature",
      timestamp: "both",
      opts: { generic: TS_B64 },
    });
  });

  it("requires the prefix when one is configured, and accepts upper-case hex", () => {
    const body = "{}";
    const hex = hmac("sha256", "s", body).toString("hex");
    const bare = req({ headers: { "x-signature": hex }, body });
    expectFail(verifyInbound("generic-hmac", bare, ["s"], { generic: BODY_HEX }, NOW), "invalid_signature");
    const upper = req({ headers: { "x-signature": `sha256=${hex.toUpperCase()}` }, body });
    expectOk(verifyInbound("generic-hmac", upper, ["s"], { generic: BODY_HEX }, NOW));
  });

  it("accepts any of several comma/space separated signatures", () => {
    const body = "{}";
    const good = `sha256=${hmac("sha256", "s", body).toString("hex")}`;
    const request = req({ headers: { "x-signature": `sha256=${"0".repeat(64)}, ${good}` }, body });
    expectOk(verifyInbound("generic-hmac", request, ["s"], { generic: BODY_HEX }, NOW));
  });

  it("defaults the separator to '.' and reads a millisecond timestamp", () => {
    const opts = { generic: { ...TS_B64, separator: undefined } };
    const ms = String(NOW * 1000);
    const request = req({
      headers: {
        "x-hook-signature": hmac("sha512", "s", `${ms}.{}`).toString("base64"),
        "x-hook-timestamp": ms,
      },
      body: "{}",
    });
    expectOk(verifyInbound("generic-hmac", request, ["s"], opts, NOW));
    expect(inboundEventTimeMs("generic-hmac", request, opts)).toBe(NOW * 1000);
  });

  it("reports missing timestamp and invalid options", () => {
    const request = req({ headers: { "x-hook-signature": "abc" }, body: "{}" });
    expectFail(verifyInbound("generic-hmac", request, ["s"], { generic: TS_B64 }, NOW), "missing_timestamp");
    expectFail(verifyInbound("generic-hmac", request, ["s"], {}, NOW), "unsupported");
    const noTsHeader = { ...TS_B64, timestampHeader: undefined };
    expectFail(verifyInbound("generic-hmac", request, ["s"], { generic: noTsHeader }, NOW), "unsupported");
    expect(genericOptionsError({ ...BODY_HEX, algorithm: "md5" as "sha1" })).toMatch(/algorithm/);
    expect(genericOptionsError({ ...BODY_HEX, eventIdPointer: "no-slash" })).toMatch(/pointer/);
    expect(genericOptionsError(BODY_HEX)).toBeUndefined();
  });

  it("takes the event id from the configured header or JSON pointer", () => {
    const withHeader = req({ headers: { "x-delivery-id": "dlv_1" }, body: '{"meta":{"id":"g"}}' });
    expect(inboundEventId("generic-hmac", withHeader, { generic: BODY_HEX })).toBe("dlv_1");
    const body = req({ body: '{"meta":{"id":42}}' });
    expect(inboundEventId("generic-hmac", body, { generic: TS_B64 })).toBe("42");
    expect(inboundEventId("generic-hmac", req({ body: "[]" }), { generic: TS_B64 })).toBeUndefined();
  });
});

function basicAuth(credentials: string) {
  return req({
    headers: { authorization: `Basic ${Buffer.from(credentials).toString("base64")}` },
    body: "{}",
  });
}

describe("basic", () => {
  forbidNetwork();

  it("accepts credentials matching any secret (rotation)", () => {
    const secrets = ["pigeon:old-pass", "pigeon:new pass:with colon"];
    expectOk(verifyInbound("basic", basicAuth("pigeon:old-pass"), secrets));
    expectOk(verifyInbound("basic", basicAuth("pigeon:new pass:with colon"), secrets));
    expectOk(
      verifyInbound(
        "basic",
        req({ headers: { authorization: `bAsIc ${Buffer.from("pigeon:old-pass").toString("base64")}` } }),
        secrets,
      ),
    );
  });

  it("rejects wrong user, wrong password, other schemes and missing headers", () => {
    const secrets = ["pigeon:pass"];
    expectFail(verifyInbound("basic", basicAuth("pigeon:wrong"), secrets), "unauthorized");
    expectFail(verifyInbound("basic", basicAuth("other:pass"), secrets), "unauthorized");
    expectFail(verifyInbound("basic", basicAuth("pigeon:pass "), secrets), "unauthorized");
    expectFail(
      verifyInbound("basic", req({ headers: { authorization: "Bearer pigeon:pass" } }), secrets),
      "unauthorized",
    );
    expectFail(verifyInbound("basic", req({}), secrets), "unauthorized");
    expectFail(verifyInbound("basic", basicAuth("pigeon:pass"), []), "unsupported");
  });

  it("takes an event id from opts.eventIdHeader / eventIdPointer", () => {
    const request = req({ headers: { "x-request-id": "r1" }, body: '{"id":"b1"}' });
    expect(inboundEventId("basic", request, { eventIdHeader: "X-Request-Id" })).toBe("r1");
    expect(inboundEventId("basic", request, { eventIdPointer: "/id" })).toBe("b1");
    expect(inboundEventId("basic", request)).toBeUndefined();
  });
});

describe("api-key", () => {
  forbidNetwork();

  it("checks x-api-key against every secret", () => {
    expectOk(verifyInbound("api-key", req({ headers: { "x-api-key": "key-2" } }), ["key-1", "key-2"]));
    expectFail(
      verifyInbound("api-key", req({ headers: { "x-api-key": "key-3" } }), ["key-1", "key-2"]),
      "unauthorized",
    );
    expectFail(
      verifyInbound("api-key", req({ headers: { "x-api-key": "key-" } }), ["key-1"]),
      "unauthorized",
    );
    expectFail(verifyInbound("api-key", req({}), ["key-1"]), "unauthorized");
  });

  it("reads a configured header, stripping Bearer from Authorization", () => {
    expectOk(
      verifyInbound("api-key", req({ headers: { "x-hook-token": "k" } }), ["k"], {
        apiKeyHeader: "X-Hook-Token",
      }),
    );
    expectOk(
      verifyInbound("api-key", req({ headers: { authorization: "Bearer k" } }), ["k"], {
        apiKeyHeader: "authorization",
      }),
    );
    expectFail(
      verifyInbound("api-key", req({ headers: { authorization: "Bearer x" } }), ["k"], {
        apiKeyHeader: "authorization",
      }),
      "unauthorized",
    );
  });

  it("never accepts an empty secret", () => {
    expectFail(verifyInbound("api-key", req({ headers: { "x-api-key": "" } }), [""]), "unsupported");
  });
});

describe("none and Microsoft Graph validation", () => {
  forbidNetwork();

  it("none always verifies", () => {
    expectOk(verifyInbound("none", req({}), []));
  });

  it("echoes Graph's decoded validationToken as text/plain", () => {
    const token =
      "Validation: Testing client application reachability for subscription Request-Id: 25b8b5d8-d1a4-4f4c-8f1a-7c1e8d2a4f3b";
    const request = req({
      method: "POST",
      url: `https://hooks.example.test/in/graph?validationToken=${encodeURIComponent(token)}`,
    });
    const expected = {
      status: 200,
      headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
      body: token,
    };
    expect(answerGenericHandshake(request)).toEqual(expected);
    expect(answerHandshake("none", request, [])).toEqual(expected);
    // provider-independent: any source answers it
    expect(answerHandshake("api-key", request, ["k"])).toEqual(expected);
    expect(answerHandshake("github", request, ["s"])).toEqual(expected);
  });

  it("is not a handshake without validationToken", () => {
    expect(answerGenericHandshake(req({ body: '{"value":[]}' }))).toBeNull();
    expect(answerHandshake("none", req({}), [])).toBeNull();
  });
});
