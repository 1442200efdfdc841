import { describe, expect, it } from "vitest";
import { answerHandshake, inboundEventId, verifyInbound } from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

describe("dropbox", () => {
  forbidNetwork();

  schemeContract({
    provider: "dropbox",
    secrets: ["dbx-app-secret-1", "dbx-app-secret-2"],
    wrongSecret: "dbx-app-secret-x",
    body: '{"list_folder": {"accounts": ["dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc"]}}',
    sign: (secret, body) =>
      req({ headers: { "x-dropbox-signature": hmac("sha256", secret, body).toString("hex") }, body }),
    signatureHeader: "x-dropbox-signature",
    timestamp: false,
  });

  it("passes the hapi-dropbox-webhooks vector", () => {
    const request = req({
      headers: { "x-dropbox-signature": "0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529" },
      body: '{"delta": {"users": [12345]}}',
    });
    expectOk(verifyInbound("dropbox", request, ["the_secret"], {}, NOW));
    expectFail(verifyInbound("dropbox", request, ["not_the_secret"], {}, NOW), "invalid_signature");
  });

  it("echoes the challenge as text/plain with nosniff", () => {
    const request = req({
      method: "GET",
      url: "https://hooks.example.test/in/dbx?challenge=%3Cb%3Ehi%3C%2Fb%3E",
    });
    expect(answerHandshake("dropbox", request, ["the_secret"])).toEqual({
      status: 200,
      headers: { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" },
      body: "<b>hi</b>",
    });
    expect(answerHandshake("dropbox", req({ method: "GET" }), ["s"])).toBeNull();
  });

  it("has no event id (thin notifications)", () => {
    expect(inboundEventId("dropbox", req({ body: '{"delta":{}}' }))).toBeUndefined();
  });
});

function xSigned(secret: string, body: string) {
  return req({
    headers: { "x-twitter-webhooks-signature": `sha256=${hmac("sha256", secret, body).toString("base64")}` },
    body,
  });
}

describe("x", () => {
  forbidNetwork();

  schemeContract({
    provider: "x",
    secrets: ["consumer-secret-1", "consumer-secret-2"],
    wrongSecret: "consumer-secret-x",
    body: JSON.stringify({ for_user_id: "2244994945", tweet_create_events: [{ id_str: "1" }] }),
    sign: xSigned,
    signatureHeader: "x-twitter-webhooks-signature",
    timestamp: false,
  });

  it("verifies base64, not hex", () => {
    const body = '{"for_user_id":"1"}';
    const hex = req({
      headers: { "x-twitter-webhooks-signature": `sha256=${hmac("sha256", "s", body).toString("hex")}` },
      body,
    });
    expectFail(verifyInbound("x", hex, ["s"], {}, NOW), "invalid_signature");
    expectOk(verifyInbound("x", xSigned("s", body), ["s"], {}, NOW));
  });

  it("answers the CRC with the published inputs", () => {
    const request = req({
      method: "GET",
      url: "https://hooks.example.test/in/x?crc_token=9b4507b3-9040-4669-9ca3-6b94edb50553",
    });
    const answer = answerHandshake("x", request, ["z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu"]);
    expect(answer?.status).toBe(200);
    expect(answer?.headers["content-type"]).toBe("application/json");
    expect(JSON.parse(answer!.body)).toEqual({
      response_token: "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=",
    });
  });

  it("answers the CRC with the current (first) secret", () => {
    const request = req({ method: "GET", url: "https://hooks.example.test/in/x?crc_token=abc" });
    const answer = answerHandshake("x", request, ["new", "old"]);
    expect(JSON.parse(answer!.body).response_token).toBe(
      `sha256=${hmac("sha256", "new", "abc").toString("base64")}`,
    );
  });

  it("refuses a crc_token shaped like an event body (it would be a signing oracle)", () => {
    const body = '{"for_user_id":"1","tweet_create_events":[]}';
    const request = req({
      method: "GET",
      url: `https://hooks.example.test/in/x?crc_token=${encodeURIComponent(body)}`,
    });
    const answer = answerHandshake("x", request, ["s"]);
    expect(answer?.status).toBe(400);
    expect(answer?.body).not.toContain(hmac("sha256", "s", body).toString("base64"));
  });

  it("folds the ids of batched events into one de-dup key", () => {
    expect(
      inboundEventId("x", xSigned("s", JSON.stringify({ tweet_create_events: [{ id_str: "9" }] }))),
    ).toBe("tweet_create_events:9");
    const many = xSigned(
      "s",
      JSON.stringify({ favorite_events: [{ id: "a" }], direct_message_events: [{ id: "b" }] }),
    );
    expect(inboundEventId("x", many)).toMatch(/^sha256:/);
  });
});
