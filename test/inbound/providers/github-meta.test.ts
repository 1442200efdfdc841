import { describe, expect, it } from "vitest";
import {
  answerHandshake,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

function hubSigned(secret: string, body: string, extra: Record<string, string> = {}) {
  return req({
    headers: {
      "x-hub-signature-256": `sha256=${hmac("sha256", secret, body).toString("hex")}`,
      "content-type": "application/json",
      ...extra,
    },
    body,
  });
}

describe("github", () => {
  forbidNetwork();

  schemeContract({
    provider: "github",
    secrets: ["gh-secret-one", "gh-secret-two"],
    wrongSecret: "gh-secret-wrong",
    body: JSON.stringify({ action: "opened", number: 7, zen: "Keep it logically awesome." }),
    sign: (secret, body) => hubSigned(secret, body),
    signatureHeader: "x-hub-signature-256",
    timestamp: false,
  });

  it("passes the octokit vector", () => {
    const request = req({
      headers: {
        "x-hub-signature-256": "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
      },
      body: '{"foo":"bar"}',
    });
    expectOk(verifyInbound("github", request, ["mysecret"], {}, NOW));
    expectFail(verifyInbound("github", request, ["notmysecret"], {}, NOW), "invalid_signature");
  });

  it("passes the GitHub docs vector", () => {
    const request = req({
      headers: {
        "x-hub-signature-256": "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
      },
      body: "Hello, World!",
    });
    expectOk(verifyInbound("github", request, ["It's a Secret to Everybody"], {}, NOW));
  });

  it("rejects a signature without the sha256= prefix", () => {
    const request = req({
      headers: { "x-hub-signature-256": "4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3" },
      body: '{"foo":"bar"}',
    });
    expectFail(verifyInbound("github", request, ["mysecret"], {}, NOW), "invalid_signature");
  });

  it("accepts the legacy sha1 header only with allowSha1", () => {
    const body = '{"foo":"bar"}';
    const request = req({
      headers: { "x-hub-signature": `sha1=${hmac("sha1", "mysecret", body).toString("hex")}` },
      body,
    });
    expectFail(verifyInbound("github", request, ["mysecret"], {}, NOW), "missing_signature");
    expectOk(verifyInbound("github", request, ["mysecret"], { allowSha1: true }, NOW));
  });

  it("uses X-GitHub-Delivery for de-dup; ping needs no handshake", () => {
    const request = hubSigned("s", '{"zen":"x","hook_id":1}', {
      "x-github-delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
      "x-github-event": "ping",
    });
    expect(inboundEventId("github", request)).toBe("72d3162e-cc78-11e3-81ab-4c9367dc0958");
    expect(inboundEventTimeMs("github", request)).toBeUndefined();
    expect(answerHandshake("github", request, ["s"])).toBeNull();
  });
});

describe("meta", () => {
  forbidNetwork();

  schemeContract({
    provider: "meta",
    secrets: ["meta-app-secret-1", "meta-app-secret-2"],
    wrongSecret: "meta-app-secret-x",
    body: '{"object":"page","entry":[{"id":"1","time":1700000000000,"messaging":[{"message":{"mid":"m_1","text":"\\u00e9"}}]}]}',
    sign: (secret, body) => hubSigned(secret, body),
    signatureHeader: "x-hub-signature-256",
    timestamp: false,
  });

  it("passes the local vector", () => {
    const request = req({
      headers: {
        "x-hub-signature-256": "sha256=22d3988d1017c437ea81a89d41e2d3266c00a508cffdb23f8ad8746d232d77e9",
      },
      body: '{"object":"page","entry":[]}',
    });
    expectOk(verifyInbound("meta", request, ["app_secret"], {}, NOW));
  });

  it("verifies the escaped-unicode bytes Meta sends, not a re-serialisation", () => {
    const sent = '{"text":"\\u00e9t\\u00e9"}';
    const request = hubSigned("app_secret", sent);
    expectOk(verifyInbound("meta", request, ["app_secret"], {}, NOW));
    const reserialised = { ...request, rawBody: Buffer.from(JSON.stringify(JSON.parse(sent))) };
    expectFail(verifyInbound("meta", reserialised, ["app_secret"], {}, NOW), "invalid_signature");
  });

  describe("hub.challenge handshake", () => {
    const url = (q: string) => `https://hooks.example.test/in/meta?${q}`;

    it("echoes hub.challenge when the verify token matches a secret", () => {
      const request = req({
        method: "GET",
        url: url("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meta-app-secret-2"),
      });
      const answer = answerHandshake("meta", request, ["meta-app-secret-1", "meta-app-secret-2"]);
      expect(answer?.status).toBe(200);
      expect(answer?.body).toBe("1158201444");
      expect(answer?.headers["content-type"]).toMatch(/^text\/plain/);
    });

    it("uses opts.verifyToken when configured", () => {
      const request = req({
        method: "GET",
        url: url("hub.mode=subscribe&hub.challenge=42&hub.verify_token=my-token"),
      });
      expect(answerHandshake("meta", request, ["app-secret"], { verifyToken: "my-token" })?.body).toBe("42");
      expect(answerHandshake("meta", request, ["my-token"], { verifyToken: "other" })?.status).toBe(403);
    });

    it("answers 403 to a wrong token or mode", () => {
      const wrong = req({
        method: "GET",
        url: url("hub.mode=subscribe&hub.challenge=42&hub.verify_token=nope"),
      });
      const answer = answerHandshake("meta", wrong, ["meta-app-secret-1"]);
      expect(answer?.status).toBe(403);
      expect(answer?.body).not.toContain("42");
      const mode = req({
        method: "GET",
        url: url("hub.mode=unsubscribe&hub.challenge=42&hub.verify_token=meta-app-secret-1"),
      });
      expect(answerHandshake("meta", mode, ["meta-app-secret-1"])?.status).toBe(403);
      const empty = req({ method: "GET", url: url("hub.mode=subscribe&hub.challenge=42&hub.verify_token=") });
      expect(answerHandshake("meta", empty, [""])?.status).toBe(403);
    });

    it("is not a handshake without hub.mode", () => {
      expect(answerHandshake("meta", req({ method: "GET" }), ["s"])).toBeNull();
      expect(answerHandshake("meta", hubSigned("s", "{}"), ["s"])).toBeNull();
    });
  });

  it("derives de-dup ids from message ids and entry time", () => {
    const messenger = hubSigned(
      "s",
      JSON.stringify({
        object: "page",
        entry: [{ id: "p1", time: 1700000000123, messaging: [{ message: { mid: "m_1" } }] }],
      }),
    );
    expect(inboundEventId("meta", messenger)).toBe("m_1");
    expect(inboundEventTimeMs("meta", messenger)).toBe(1700000000123);
    const whatsapp = hubSigned(
      "s",
      JSON.stringify({
        object: "whatsapp_business_account",
        entry: [{ id: "w1", changes: [{ value: { statuses: [{ id: "wamid.A", status: "delivered" }] } }] }],
      }),
    );
    expect(inboundEventId("meta", whatsapp)).toBe("wamid.A:delivered");
    const feed = hubSigned(
      "s",
      JSON.stringify({ object: "page", entry: [{ id: "p1", time: 1700000000, changes: [] }] }),
    );
    expect(inboundEventId("meta", feed)).toBe("p1:1700000000");
    expect(inboundEventTimeMs("meta", feed)).toBe(1700000000000);
    const batch = hubSigned(
      "s",
      JSON.stringify({
        object: "page",
        entry: [{ id: "p", time: 1, messaging: [{ message: { mid: "b" } }, { message: { mid: "a" } }] }],
      }),
    );
    expect(inboundEventId("meta", batch)).toMatch(/^sha256:[0-9a-f]{64}$/);
  });
});
