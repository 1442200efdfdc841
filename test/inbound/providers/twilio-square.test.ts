import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  answerHandshake,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import { twilioParamString, twilioUrlCandidates } from "../../../src/inbound/providers/twilio.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

const TWILIO_URL = "https://mycompany.com/myapp.php?foo=1&bar=2";
const TWILIO_PARAMS = {
  CallSid: "CA1234567890ABCDE",
  Caller: "+14158675309",
  Digits: "1234",
  From: "+14158675309",
  To: "+18005551212",
};
const FORM = "application/x-www-form-urlencoded; charset=UTF-8";

function twilioFormSigned(token: string, body: string, url = TWILIO_URL) {
  const signed = url + twilioParamString(new URLSearchParams(body));
  return req({
    url,
    headers: { "x-twilio-signature": hmac("sha1", token, signed).toString("base64"), "content-type": FORM },
    body,
  });
}

describe("twilio", () => {
  forbidNetwork();

  describe("form-encoded", () => {
    schemeContract({
      provider: "twilio",
      secrets: ["auth-token-1", "auth-token-2"],
      wrongSecret: "auth-token-x",
      body: "MessageSid=SM1&Body=Hello+%F0%9F%90%A6&From=%2B15551234567&To=%2B15557654321",
      sign: (secret, body) => twilioFormSigned(secret, body),
      signatureHeader: "x-twilio-signature",
      timestamp: false,
    });
  });

  describe("JSON with bodySHA256", () => {
    schemeContract({
      provider: "twilio",
      secrets: ["auth-token-1", "auth-token-2"],
      wrongSecret: "auth-token-x",
      body: '{"property": "value", "boolean": true}',
      sign: (secret, body) => {
        const url = `${TWILIO_URL}&bodySHA256=${createHash("sha256").update(body).digest("hex")}`;
        return req({
          url,
          headers: {
            "x-twilio-signature": hmac("sha1", secret, url).toString("base64"),
            "content-type": "application/json",
          },
          body,
        });
      },
      signatureHeader: "x-twilio-signature",
      timestamp: false,
    });
  });

  it("passes the twilio-node form vector", () => {
    const body = new URLSearchParams(TWILIO_PARAMS).toString();
    const request = req({
      url: TWILIO_URL,
      headers: { "x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "content-type": FORM },
      body,
    });
    expectOk(verifyInbound("twilio", request, ["12345"], {}, NOW));
    expectFail(verifyInbound("twilio", request, ["54321"], {}, NOW), "invalid_signature");
  });

  it("passes the twilio-node JSON (bodySHA256) vector", () => {
    const body = '{"property": "value", "boolean": true}';
    const hash = createHash("sha256").update(body).digest("hex");
    expect(hash.startsWith("0a1ff763") && hash.endsWith("f96e6620")).toBe(true);
    const request = req({
      url: `${TWILIO_URL}&bodySHA256=${hash}`,
      headers: { "x-twilio-signature": "a9nBmqA0ju/hNViExpshrM61xv4=", "content-type": "application/json" },
      body,
    });
    expectOk(verifyInbound("twilio", request, ["12345"], {}, NOW));
    const tampered = { ...request, rawBody: Buffer.from('{"property": "value", "boolean": false}') };
    expectFail(verifyInbound("twilio", tampered, ["12345"], {}, NOW), "invalid_signature");
  });

  it("tries the URL with and without the standard port", () => {
    const body = new URLSearchParams(TWILIO_PARAMS).toString();
    const withPort = req({
      url: "https://mycompany.com:443/myapp.php?foo=1&bar=2",
      headers: { "x-twilio-signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8=", "content-type": FORM },
      body,
    });
    expectOk(verifyInbound("twilio", withPort, ["12345"], {}, NOW));
    const signedWithPort = twilioFormSigned("12345", body, "https://mycompany.com:443/myapp.php?foo=1&bar=2");
    expectOk(verifyInbound("twilio", { ...signedWithPort, url: TWILIO_URL }, ["12345"], {}, NOW));
    expect(twilioUrlCandidates(TWILIO_URL)).toContain("https://mycompany.com:443/myapp.php?foo=1&bar=2");
  });

  it("tries the legacy query-string encoding", () => {
    // WHATWG URL keeps "@" and "/" in a query; node's querystring escapes them
    const signedUrl = "https://example.test/sms?email=a%40b.test&path=%2Fx";
    const request = twilioFormSigned("tok", "A=1", signedUrl);
    const asReceived = { ...request, url: "https://example.test/sms?email=a@b.test&path=/x" };
    expect(new URL(asReceived.url).toString()).toBe(asReceived.url);
    expectOk(verifyInbound("twilio", asReceived, ["tok"], {}, NOW));
    expectFail(verifyInbound("twilio", asReceived, ["other"], {}, NOW), "invalid_signature");
  });

  it("signs repeated parameters as each distinct value, sorted", () => {
    expect(twilioParamString(new URLSearchParams("b=2&a=z&a=y&a=z"))).toBe("ay" + "az" + "b2");
  });

  it("uses opts.publicUrl when the app sits behind a proxy", () => {
    const request = twilioFormSigned("tok", "A=1", "https://public.example.test/twilio?x=1");
    const internal = { ...request, url: "http://10.0.0.5:8080/in/src_1?x=1" };
    expectFail(verifyInbound("twilio", internal, ["tok"], {}, NOW), "invalid_signature");
    expectOk(
      verifyInbound("twilio", internal, ["tok"], { publicUrl: "https://public.example.test/twilio" }, NOW),
    );
  });

  it("uses I-Twilio-Idempotency-Token for de-dup; no handshake", () => {
    const request = req({ headers: { "i-twilio-idempotency-token": "b1c2d3" } });
    expect(inboundEventId("twilio", request)).toBe("b1c2d3");
    expect(answerHandshake("twilio", request, ["t"])).toBeNull();
  });
});

const SQUARE_URL = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
const SQUARE_BODY =
  '{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}';

function squareSigned(key: string, body: string, url = "https://hooks.example.test/in/square") {
  return req({
    url,
    headers: { "x-square-hmacsha256-signature": hmac("sha256", key, url + body).toString("base64") },
    body,
  });
}

describe("square", () => {
  forbidNetwork();

  schemeContract({
    provider: "square",
    secrets: ["sq-key-1", "sq-key-2"],
    wrongSecret: "sq-key-x",
    body: '{"event_id":"e1","created_at":"2024-05-01T00:00:00Z","data":{}}',
    sign: (secret, body) => squareSigned(secret, body),
    signatureHeader: "x-square-hmacsha256-signature",
    timestamp: false,
  });

  it("passes the square-nodejs-sdk vectors", () => {
    const a = req({
      url: SQUARE_URL,
      headers: { "x-square-hmacsha256-signature": "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=" },
      body: SQUARE_BODY,
    });
    expectOk(verifyInbound("square", a, ["Ibxx_5AKakO-3qeNVR61Dw"], {}, NOW));
    expectFail(verifyInbound("square", a, ["MCmhFRxGX82xMwg5FsaoQA"], {}, NOW), "invalid_signature");
    const b = req({
      url: "https://webhook.site/webhooks",
      headers: { "x-square-hmacsha256-signature": "W3FlCNk5IA3ZQ2LHTWoajvzfaDu/OwY2tNHIHC3IUOA=" },
      body: '{"data":{"type":"webhooks","id":"fake_id"}}',
    });
    expectOk(verifyInbound("square", b, ["signature-key"], {}, NOW));
    const c = req({
      url: "https://webhook.site/webhooks",
      headers: { "x-square-hmacsha256-signature": "Cxt7+aTi4rKgcA0bC4g9EHdVtLSDWdqccmL5MvihU4U=" },
      body: '{"data":{"type":"webhooks","id":">id<"}}',
    });
    expectOk(verifyInbound("square", c, ["signature-key"], {}, NOW));
  });

  it("signs the notification URL: another URL fails, publicUrl fixes a proxied one", () => {
    const a = req({
      url: SQUARE_URL,
      headers: { "x-square-hmacsha256-signature": "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=" },
      body: SQUARE_BODY,
    });
    const moved = { ...a, url: "https://webhook.site/79a4f3a-dcfa-49ee-bac5-9d0edad886b9" };
    expectFail(verifyInbound("square", moved, ["Ibxx_5AKakO-3qeNVR61Dw"], {}, NOW), "invalid_signature");
    expectOk(verifyInbound("square", moved, ["Ibxx_5AKakO-3qeNVR61Dw"], { publicUrl: SQUARE_URL }, NOW));
  });

  it("accepts legacy x-square-signature (SHA-1) only with allowSha1", () => {
    const url = "https://hooks.example.test/in/square";
    const request = req({
      url,
      headers: { "x-square-signature": hmac("sha1", "k", `${url}{}`).toString("base64") },
      body: "{}",
    });
    expectFail(verifyInbound("square", request, ["k"], {}, NOW), "missing_signature");
    expectOk(verifyInbound("square", request, ["k"], { allowSha1: true }, NOW));
  });

  it("takes event_id and created_at from the body", () => {
    const a = req({ url: SQUARE_URL, body: SQUARE_BODY });
    expect(inboundEventId("square", a)).toBe("ac3ac95b-f97d-458c-a6e6-18981597e05f");
    expect(inboundEventTimeMs("square", a)).toBe(Date.parse("2022-07-13T20:30:59.037Z"));
  });
});
