import { Webhook as StandardWebhook } from "standardwebhooks";
import { Webhook as SvixWebhook } from "svix";
import { describe, expect, it } from "vitest";
import { decodeSecret, generateSecret } from "../../src/signing/secrets.js";
import { buildSignatureHeaders, signPayload, verifyPayload } from "../../src/signing/standard-webhooks.js";

const now = () => Math.floor(Date.now() / 1000);

function signed(secrets: string[], body: Buffer | string, headerStyle: "webhook" | "svix" = "webhook") {
  const msgId = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W";
  const timestampSec = now();
  const signature = signPayload(secrets.map(decodeSecret), msgId, timestampSec, body);
  return buildSignatureHeaders({ msgId, timestampSec, signature, headerStyle });
}

describe("signPayload against the standardwebhooks oracle", () => {
  it("is verified by standardwebhooks for a JSON body", () => {
    const secret = generateSecret();
    const body = JSON.stringify({ type: "employee.created", data: { id: 1 } });
    const headers = signed([secret], body);
    expect(Object.keys(headers)).toEqual(["webhook-id", "webhook-timestamp", "webhook-signature"]);
    expect(new StandardWebhook(secret).verify(body, headers)).toEqual({
      type: "employee.created",
      data: { id: 1 },
    });
  });

  it("signs the exact bytes of a unicode body (string and Buffer give the same signature)", () => {
    const secret = generateSecret();
    const body = JSON.stringify({ name: "Zoë Ångström 🐦", city: "東京" });
    const fromString = signed([secret], body);
    const fromBuffer = signed([secret], Buffer.from(body, "utf8"));
    expect(fromBuffer["webhook-signature"]).toBe(fromString["webhook-signature"]);
    expect(new StandardWebhook(secret).verify(Buffer.from(body, "utf8"), fromBuffer)).toEqual(
      JSON.parse(body),
    );
  });

  it("matches the oracle's own signature byte for byte", () => {
    const secret = generateSecret();
    const ts = 1674087231;
    const body = '{"a":"é"}';
    const ours = signPayload([decodeSecret(secret)], "msg_1", ts, body);
    expect(ours).toBe(new StandardWebhook(secret).sign("msg_1", new Date(ts * 1000), body));
  });

  it("during rotation every key signs; a verifier knowing only the old or only the new key accepts", () => {
    const oldSecret = generateSecret();
    const newSecret = generateSecret();
    const body = '{"rotated":true}';
    const headers = signed([oldSecret, newSecret], body);
    expect(headers["webhook-signature"]?.split(" ")).toHaveLength(2);
    expect(new StandardWebhook(oldSecret).verify(body, headers)).toEqual({ rotated: true });
    expect(new StandardWebhook(newSecret).verify(body, headers)).toEqual({ rotated: true });
    expect(() => new StandardWebhook(generateSecret()).verify(body, headers)).toThrow();
  });
});

describe("svix-style headers", () => {
  it("are verified by the svix package", () => {
    const secret = generateSecret();
    const body = '{"hello":"wörld"}';
    const headers = signed([secret], body, "svix");
    expect(Object.keys(headers)).toEqual(["svix-id", "svix-timestamp", "svix-signature"]);
    expect(new SvixWebhook(secret).verify(body, headers)).toEqual({ hello: "wörld" });
  });
});

describe("verifyPayload", () => {
  const key = decodeSecret(generateSecret());
  const body = Buffer.from('{"amount":100}');
  const ts = 1_700_000_000;
  const headers = { id: "msg_1", timestamp: String(ts), signature: signPayload([key], "msg_1", ts, body) };

  it("accepts what signPayload produced", () => {
    expect(verifyPayload([key], headers, body, { nowSec: ts })).toEqual({ ok: true });
    expect(verifyPayload([key], headers, body.toString(), { nowSec: ts + 300 })).toEqual({ ok: true });
  });

  it("accepts what the standardwebhooks oracle produced", () => {
    const secret = generateSecret();
    const signature = new StandardWebhook(secret).sign("msg_9", new Date(ts * 1000), body);
    const result = verifyPayload([decodeSecret(secret)], { ...headers, id: "msg_9", signature }, body, {
      nowSec: ts,
    });
    expect(result).toEqual({ ok: true });
  });

  it("accepts if any v1 signature matches any key, ignoring other versions", () => {
    const other = decodeSecret(generateSecret());
    const signature = `v1a,AAAA ${signPayload([other], "msg_1", ts, body)} ${headers.signature}`;
    expect(verifyPayload([key], { ...headers, signature }, body, { nowSec: ts })).toEqual({ ok: true });
    expect(verifyPayload([other, key], headers, body, { nowSec: ts })).toEqual({ ok: true });
  });

  it("rejects a changed body", () => {
    expect(verifyPayload([key], headers, '{"amount":1000}', { nowSec: ts })).toEqual({
      ok: false,
      code: "invalid_signature",
    });
  });

  it("rejects the wrong key", () => {
    const wrong = decodeSecret(generateSecret());
    expect(verifyPayload([wrong], headers, body, { nowSec: ts })).toEqual({
      ok: false,
      code: "invalid_signature",
    });
  });

  it("rejects a stale or future timestamp", () => {
    expect(verifyPayload([key], headers, body, { nowSec: ts + 301 })).toEqual({
      ok: false,
      code: "timestamp_out_of_tolerance",
    });
    expect(verifyPayload([key], headers, body, { nowSec: ts - 301 })).toEqual({
      ok: false,
      code: "timestamp_out_of_tolerance",
    });
    expect(verifyPayload([key], headers, body, { nowSec: ts + 1000, toleranceSec: 1000 })).toEqual({
      ok: true,
    });
    // Default "now" is the wall clock; a 2023 timestamp is long stale.
    expect(verifyPayload([key], headers, body)).toEqual({ ok: false, code: "timestamp_out_of_tolerance" });
  });

  it("rejects missing or malformed headers", () => {
    expect(verifyPayload([key], { ...headers, id: "" }, body, { nowSec: ts })).toEqual({
      ok: false,
      code: "missing_headers",
    });
    expect(verifyPayload([key], { ...headers, signature: "" }, body, { nowSec: ts }).ok).toBe(false);
    expect(verifyPayload([key], { ...headers, timestamp: "soon" }, body, { nowSec: ts })).toEqual({
      ok: false,
      code: "missing_headers",
    });
  });

  it("rejects truncated or garbage signatures without throwing", () => {
    for (const signature of ["v1,", "v1,abc", "garbage", "v2,xyz", headers.signature.slice(0, -2)]) {
      expect(verifyPayload([key], { ...headers, signature }, body, { nowSec: ts })).toEqual({
        ok: false,
        code: "invalid_signature",
      });
    }
  });
});
