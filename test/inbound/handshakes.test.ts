import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { createSource, inbox, send, signSlack, signStandard, signZoom, whsec } from "./helpers.js";

describe("registration handshakes through the ingest route", () => {
  let p: TestPigeon;
  beforeAll(async () => {
    p = await startPigeon();
  });
  afterAll(async () => {
    await p.close();
  });

  it("Slack url_verification: verified, then the challenge echoed as JSON", async () => {
    const secret = "slack-signing-secret";
    const source = await createSource(p, { name: "slack", provider: "slack", secrets: [secret] });
    const body = JSON.stringify({
      token: "t",
      challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
      type: "url_verification",
    });
    const res = await send(p, source.ingestPath, body, signSlack(secret, body));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ challenge: "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" });

    const forged = await send(p, source.ingestPath, body, signSlack("not-the-secret", body));
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ code: "invalid_signature", detail: expect.any(String) });
    // A handshake is not an event: nothing is stored.
    expect(await inbox(p, source.id)).toEqual([]);
  });

  it("Slack ssl_check: 200 with nothing echoed", async () => {
    const source = await createSource(p, { name: "slack-ssl", provider: "slack", secrets: ["s"] });
    const res = await send(p, source.ingestPath, "ssl_check=1&token=<script>", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("");
  });

  it("Zoom endpoint.url_validation: plainToken with its HMAC", async () => {
    const secret = "zoom_secret";
    const source = await createSource(p, { name: "zoom", provider: "zoom", secrets: [secret] });
    const body = JSON.stringify({
      event: "endpoint.url_validation",
      payload: { plainToken: "qgg8vlvZRS6UYooatFL8Aw" },
      event_ts: Date.now(),
    });
    const res = await send(p, source.ingestPath, body, signZoom(secret, body));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      plainToken: "qgg8vlvZRS6UYooatFL8Aw",
      encryptedToken: "46a324cfb7c2ec760e4cd561586a53aadb6fc7561eb8d626d6ee1b71d808b3c0",
    });
  });

  it("Meta hub.challenge: echoed for the right verify token, 403 otherwise", async () => {
    const source = await createSource(p, {
      name: "meta",
      provider: "meta",
      secrets: ["app_secret"],
      options: { verifyToken: "my-verify-token" },
    });
    const ok = await send(
      p,
      `${source.ingestPath}?hub.mode=subscribe&hub.verify_token=my-verify-token&hub.challenge=1158201444`,
      undefined,
      {},
      "GET",
    );
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe("1158201444");
    const bad = await send(
      p,
      `${source.ingestPath}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1`,
      undefined,
      {},
      "GET",
    );
    expect(bad.status).toBe(403);
  });

  it("X CRC: response_token is the base64 HMAC of crc_token", async () => {
    const secret = "z3ZX4v7mAAUGykl3EcmkqbartmuW8VFOOzCloLx9Q45P0hLrFu";
    const source = await createSource(p, { name: "x", provider: "x", secrets: [secret] });
    const res = await send(
      p,
      `${source.ingestPath}?crc_token=9b4507b3-9040-4669-9ca3-6b94edb50553`,
      undefined,
      {},
      "GET",
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      response_token: "sha256=Cytd4Sq+NvEcV3MMrXxWJGJx5A+y/lXzzU2Maartkx8=",
    });
  });

  it("Dropbox challenge: echoed as text/plain with nosniff", async () => {
    const source = await createSource(p, { name: "dropbox", provider: "dropbox", secrets: ["the_secret"] });
    const res = await send(p, `${source.ingestPath}?challenge=abc123`, undefined, {}, "GET");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await res.text()).toBe("abc123");
  });

  it("Microsoft Graph validationToken: the decoded token as text/plain", async () => {
    const source = await createSource(p, { name: "graph", provider: "none", secrets: [] });
    const token = "Validation: Testing client application reachability for subscription Request-Id: 1";
    const res = await send(
      p,
      `${source.ingestPath}?validationToken=${encodeURIComponent(token)}`,
      "",
      {},
      "POST",
    );
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
    expect(await res.text()).toBe(token);
  });

  it("Pigeon webhook.verification: verified, then the challenge echoed", async () => {
    const secret = whsec();
    const source = await createSource(p, {
      name: "pigeon",
      provider: "standard-webhooks",
      secrets: [secret],
    });
    const body = JSON.stringify({ type: "webhook.verification", data: { challenge: "c-42" } });
    const res = await send(p, source.ingestPath, body, signStandard(secret, "msg_hs", body));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ challenge: "c-42" });
    const forged = await send(p, source.ingestPath, body, signStandard(whsec(), "msg_hs", body));
    expect(forged.status).toBe(401);
  });

  it("Pigeon to Pigeon: an endpoint pointing at a source passes the real handshake and delivers", async () => {
    const secret = whsec();
    const source = await createSource(p, { name: "loop", provider: "standard-webhooks", secrets: [secret] });
    const received: string[] = [];
    p.engine.inbound.on(
      "loop.event",
      (event) => {
        received.push(event.text());
      },
      { source: source.id },
    );
    const app = (await (
      await p.request("POST", "/api/v1/app", { name: "Loop", handshake: "required" })
    ).json()) as { id: string };
    const endpoint = await p.request("POST", `/api/v1/app/${app.id}/endpoint`, {
      url: source.ingestUrl,
      secret,
    });
    expect(endpoint.status).toBe(201);
    const endpointId = ((await endpoint.json()) as { id: string }).id;
    await waitUntil(
      async () =>
        (
          (await (await p.request("GET", `/api/v1/app/${app.id}/endpoint/${endpointId}`)).json()) as {
            status: string;
          }
        ).status === "active",
      10_000,
      "the endpoint to pass the handshake",
    );
    // Standard Webhooks payloads name their type in `type`; that is what `on()` matches.
    const payload = { type: "loop.event", data: { hello: "bank" } };
    const msg = await p.request("POST", `/api/v1/app/${app.id}/msg`, { eventType: "loop.event", payload });
    expect(msg.status).toBe(202);
    await waitUntil(() => received.length === 1, 10_000, "the looped message");
    expect(JSON.parse(received[0]!)).toEqual(payload);
    const items = await inbox(p, source.id);
    expect(items).toHaveLength(1);
    // The handshake itself was answered, not stored.
    expect(items[0]!.eventType).toBe("loop.event");
  });
});
