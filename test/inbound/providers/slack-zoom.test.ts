import { describe, expect, it } from "vitest";
import {
  answerHandshake,
  inboundEventId,
  inboundEventTimeMs,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import { expectFail, expectOk, forbidNetwork, hmac, NOW, req, schemeContract } from "./helpers.js";

function slackSigned(secret: string, body: string, ts: number, contentType = "application/json") {
  return req({
    headers: {
      "x-slack-signature": `v0=${hmac("sha256", secret, `v0:${ts}:${body}`).toString("hex")}`,
      "x-slack-request-timestamp": String(ts),
      "content-type": contentType,
    },
    body,
  });
}

const SLACK_DOCS_BODY =
  "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

describe("slack", () => {
  forbidNetwork();

  schemeContract({
    provider: "slack",
    secrets: ["slack-signing-1", "slack-signing-2"],
    wrongSecret: "slack-signing-x",
    body: JSON.stringify({
      type: "event_callback",
      event_id: "Ev1",
      event_time: NOW,
      event: { type: "message" },
    }),
    sign: (secret, body, ts) => slackSigned(secret, body, ts),
    signatureHeader: "x-slack-signature",
    timestamp: "past",
  });

  it("passes the Slack docs vector", () => {
    const request = req({
      headers: {
        "x-slack-signature": "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
        "x-slack-request-timestamp": "1531420618",
        "content-type": "application/x-www-form-urlencoded",
      },
      body: SLACK_DOCS_BODY,
    });
    expectOk(verifyInbound("slack", request, ["8f742231b10e8888abcd99yyyzzz85a5"], {}, 1531420618));
    expectFail(
      verifyInbound("slack", request, ["8f742231b10e8888abcd99yyyzzz85a5"], {}, 1531420618 + 301),
      "timestamp_out_of_tolerance",
    );
    expect(inboundEventId("slack", request)).toBe(
      "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c",
    );
  });

  it("reports a missing timestamp header", () => {
    const request = slackSigned("s", "{}", NOW);
    delete request.headers["x-slack-request-timestamp"];
    expectFail(verifyInbound("slack", request, ["s"], {}, NOW), "missing_timestamp");
  });

  it("answers url_verification with the challenge only after verifying", () => {
    const body = JSON.stringify({
      token: "Jhj5dZrVaK7ZwHHjRyZWjbDl",
      challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
      type: "url_verification",
    });
    const answer = answerHandshake(
      "slack",
      slackSigned("slack-signing-2", body, NOW),
      ["slack-signing-1", "slack-signing-2"],
      {},
      NOW,
    );
    expect(answer).toEqual({
      status: 200,
      headers: { "content-type": "application/json" },
      body: '{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}',
    });
    const forged = answerHandshake("slack", slackSigned("other", body, NOW), ["slack-signing-1"], {}, NOW);
    expect(forged?.status).toBe(401);
    expect(forged?.body).not.toContain("3eZbrw1aBm2");
    const stale = answerHandshake(
      "slack",
      slackSigned("slack-signing-1", body, NOW - 600),
      ["slack-signing-1"],
      {},
      NOW,
    );
    expect(stale?.status).toBe(401);
  });

  it("answers ssl_check with an empty 200, echoing nothing", () => {
    const request = req({
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "ssl_check=1&token=abc&smuggled=%3Cscript%3E",
    });
    expect(answerHandshake("slack", request, ["s"], {}, NOW)).toEqual({ status: 200, headers: {}, body: "" });
  });

  it("is not a handshake for events and commands", () => {
    expect(
      answerHandshake("slack", slackSigned("s", '{"type":"event_callback"}', NOW), ["s"], {}, NOW),
    ).toBeNull();
    expect(
      answerHandshake(
        "slack",
        slackSigned("s", SLACK_DOCS_BODY, NOW, "application/x-www-form-urlencoded"),
        ["s"],
        {},
        NOW,
      ),
    ).toBeNull();
  });

  it("takes event_id and event_time from the body", () => {
    const request = slackSigned("s", JSON.stringify({ event_id: "Ev08MFMKH6", event_time: 1234567890 }), NOW);
    expect(inboundEventId("slack", request)).toBe("Ev08MFMKH6");
    expect(inboundEventTimeMs("slack", request)).toBe(1234567890000);
  });
});

function zoomSigned(secret: string, body: string, ts: number) {
  return req({
    headers: {
      "x-zm-signature": `v0=${hmac("sha256", secret, `v0:${ts}:${body}`).toString("hex")}`,
      "x-zm-request-timestamp": String(ts),
      "content-type": "application/json",
    },
    body,
  });
}

describe("zoom", () => {
  forbidNetwork();

  schemeContract({
    provider: "zoom",
    secrets: ["zoom-token-1", "zoom-token-2"],
    wrongSecret: "zoom-token-x",
    body: JSON.stringify({
      event: "meeting.started",
      event_ts: NOW * 1000,
      payload: { object: { uuid: "u==" } },
    }),
    sign: (secret, body, ts) => zoomSigned(secret, body, ts),
    signatureHeader: "x-zm-signature",
    timestamp: "past",
  });

  it("passes the local signature vector", () => {
    const request = req({
      headers: {
        "x-zm-signature": "v0=d13886e7d0cf71d67e3fba53de02a14ec5777de6fb3b269e1b14b431436b1eac",
        "x-zm-request-timestamp": "1700000000",
      },
      body: '{"event":"meeting.started","payload":{}}',
    });
    expectOk(verifyInbound("zoom", request, ["zoom_secret"], {}, 1700000000));
  });

  it("verifies the raw bytes, not a re-serialisation of pretty-printed JSON", () => {
    const pretty = JSON.stringify({ event: "meeting.ended", payload: {} }, null, 2);
    expectOk(verifyInbound("zoom", zoomSigned("s", pretty, NOW), ["s"], {}, NOW));
  });

  it("reads a millisecond request timestamp too", () => {
    const body = "{}";
    const ms = NOW * 1000;
    const request = req({
      headers: {
        "x-zm-signature": `v0=${hmac("sha256", "s", `v0:${ms}:${body}`).toString("hex")}`,
        "x-zm-request-timestamp": String(ms),
      },
      body,
    });
    expectOk(verifyInbound("zoom", request, ["s"], {}, NOW));
    expectFail(verifyInbound("zoom", request, ["s"], {}, NOW + 1000), "timestamp_out_of_tolerance");
  });

  describe("endpoint.url_validation", () => {
    const body = JSON.stringify({
      payload: { plainToken: "qgg8vlvZRS6UYooatFL8Aw" },
      event_ts: 1654503849680,
      event: "endpoint.url_validation",
    });

    it("answers plainToken + encryptedToken (local vector)", () => {
      const answer = answerHandshake("zoom", zoomSigned("zoom_secret", body, NOW), ["zoom_secret"], {}, NOW);
      expect(answer?.status).toBe(200);
      expect(answer?.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(answer!.body)).toEqual({
        plainToken: "qgg8vlvZRS6UYooatFL8Aw",
        encryptedToken: "46a324cfb7c2ec760e4cd561586a53aadb6fc7561eb8d626d6ee1b71d808b3c0",
      });
    });

    it("uses the secret that verified the request during rotation", () => {
      const answer = answerHandshake(
        "zoom",
        zoomSigned("zoom_secret", body, NOW),
        ["old-secret", "zoom_secret"],
        {},
        NOW,
      );
      expect(JSON.parse(answer!.body).encryptedToken).toBe(
        hmac("sha256", "zoom_secret", "qgg8vlvZRS6UYooatFL8Aw").toString("hex"),
      );
    });

    it("refuses unsigned or forged validations (they would be an HMAC oracle)", () => {
      const oracle = JSON.stringify({
        event: "endpoint.url_validation",
        payload: { plainToken: `v0:${NOW}:{"event":"x"}` },
      });
      expect(answerHandshake("zoom", req({ body: oracle }), ["zoom_secret"], {}, NOW)?.status).toBe(401);
      const forged = answerHandshake("zoom", zoomSigned("guess", body, NOW), ["zoom_secret"], {}, NOW);
      expect(forged?.status).toBe(401);
      expect(forged?.body).not.toContain("encryptedToken");
    });
  });

  it("derives a de-dup id from event + event_ts (+ object), else x-zm-trackingid", () => {
    const withObject = zoomSigned(
      "s",
      JSON.stringify({
        event: "meeting.started",
        event_ts: 1626230691572,
        payload: { object: { uuid: "4444AAAiAAAAAiAiAiiAii==", id: "1" } },
      }),
      NOW,
    );
    expect(inboundEventId("zoom", withObject)).toBe("meeting.started:1626230691572:4444AAAiAAAAAiAiAiiAii==");
    expect(inboundEventTimeMs("zoom", withObject)).toBe(1626230691572);
    const bare = zoomSigned("s", JSON.stringify({ event: "app.deauthorized", event_ts: 5 }), NOW);
    expect(inboundEventId("zoom", bare)).toBe("app.deauthorized:5");
    const tracked = req({ headers: { "x-zm-trackingid": "v=2.0;clid=aw1;rid=WEB_1" }, body: "not json" });
    expect(inboundEventId("zoom", tracked)).toBe("v=2.0;clid=aw1;rid=WEB_1");
  });
});
