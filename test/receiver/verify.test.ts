import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { answerHandshake, verify, verifyRequest } from "../../src/receiver/index.js";
import { whsec } from "../inbound/helpers.js";

describe("receiver verify helpers", () => {
  it("verifies an Express-style request (raw body) signed by the official standardwebhooks package", () => {
    const secret = whsec();
    const body = JSON.stringify({ type: "employee.created", data: { id: 1 } });
    const ts = new Date();
    const signature = new Webhook(secret).sign("msg_1", ts, body);
    const headers = {
      "webhook-id": "msg_1",
      "webhook-timestamp": String(Math.floor(ts.getTime() / 1000)),
      "webhook-signature": signature,
    };
    const req = { method: "POST", url: "/webhooks", headers, body: Buffer.from(body) };
    expect(verify("standard-webhooks", req, secret)).toEqual({ ok: true });
    expect(verify("standard-webhooks", req, [whsec(), secret])).toEqual({ ok: true });
    expect(verify("standard-webhooks", { ...req, body: `${body} ` }, secret)).toMatchObject({
      ok: false,
      code: "invalid_signature",
    });
    expect(
      verify("standard-webhooks", req, secret, { nowSec: Math.floor(ts.getTime() / 1000) + 3600 }),
    ).toMatchObject({
      ok: false,
      code: "timestamp_out_of_tolerance",
    });
  });

  it("refuses a parsed body with a message pointing at express.raw()", () => {
    const req = { url: "/", headers: {}, body: { parsed: true } as unknown as string };
    expect(() => verify("github", req, "s")).toThrow(/express\.raw/);
  });

  it("builds the signed URL from Host for URL-signing providers (Square)", () => {
    const key = "signature-key";
    const body = '{"data":{"type":"webhooks","id":"fake_id"}}';
    const sig = createHmac("sha256", key).update(`https://hooks.bank.test/webhooks${body}`).digest("base64");
    const req = {
      url: "/webhooks",
      headers: {
        host: "hooks.bank.test",
        "x-forwarded-proto": "https",
        "x-square-hmacsha256-signature": sig,
      },
      body,
    };
    expect(verify("square", req, key)).toEqual({ ok: true });
  });

  it("answers handshakes", () => {
    const answer = answerHandshake(
      "dropbox",
      { method: "GET", url: "/hook?challenge=xyz", headers: {}, body: "" },
      "secret",
    );
    expect(answer).toMatchObject({ status: 200, body: "xyz" });
    expect(
      answerHandshake("dropbox", { method: "POST", url: "/hook", headers: {}, body: "{}" }, "secret"),
    ).toBeNull();
  });

  it("reads and verifies a node request, returning the verified bytes", async () => {
    const secret = "gh";
    const server = createServer(async (req, res) => {
      const { result, body } = await verifyRequest("github", req, secret);
      res.writeHead(result.ok ? 200 : 401, { "content-type": "application/json" });
      res.end(JSON.stringify({ ok: result.ok, bytes: body.length }));
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
    try {
      const body = '{"zen":"Design for failure."}';
      const sig = `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`;
      const good = await fetch(url, { method: "POST", body, headers: { "x-hub-signature-256": sig } });
      expect(good.status).toBe(200);
      expect(await good.json()).toEqual({ ok: true, bytes: body.length });
      const bad = await fetch(url, {
        method: "POST",
        body: `${body}!`,
        headers: { "x-hub-signature-256": sig },
      });
      expect(bad.status).toBe(401);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
