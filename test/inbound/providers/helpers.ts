import { createHmac } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, expect, it } from "vitest";
import { toInboundRequest, verifyInbound } from "../../../src/inbound/providers/index.js";
import type {
  InboundRequest,
  ProviderName,
  ProviderOptions,
  VerifyFailureCode,
  VerifyResult,
} from "../../../src/inbound/providers/types.js";

export const NOW = 1_700_000_000;

/** Makes any attempt to open a socket fail the test: these are pure functions. */
export function forbidNetwork(): void {
  const original = net.Socket.prototype.connect;
  beforeAll(() => {
    net.Socket.prototype.connect = function forbidden(): never {
      throw new Error("network access is forbidden in provider tests");
    } as typeof original;
  });
  afterAll(() => {
    net.Socket.prototype.connect = original;
  });
}

export function req(init: {
  method?: string;
  url?: string;
  headers?: Record<string, string | undefined>;
  body?: string | Buffer;
}): InboundRequest {
  return toInboundRequest({ url: "https://hooks.example.test/in/src_1", ...init });
}

export function hmac(alg: "sha1" | "sha256" | "sha512", key: string | Buffer, data: string | Buffer): Buffer {
  return createHmac(alg, key).update(data).digest();
}

export function withBody(request: InboundRequest, body: string | Buffer): InboundRequest {
  return { ...request, rawBody: Buffer.isBuffer(body) ? body : Buffer.from(body) };
}

export function withoutHeader(request: InboundRequest, name: string): InboundRequest {
  const headers = { ...request.headers };
  delete headers[name.toLowerCase()];
  return { ...request, headers };
}

export function expectOk(result: VerifyResult): void {
  expect(result).toEqual({ ok: true });
}

export function expectFail(result: VerifyResult, code: VerifyFailureCode): void {
  expect(result.ok).toBe(false);
  if (!result.ok) {
    expect(result.code).toBe(code);
    expect(result.message).toEqual(expect.any(String));
  }
}

export interface SchemeContract {
  provider: ProviderName;
  /** Two secrets, as during rotation. */
  secrets: [string, string];
  wrongSecret: string;
  body: string;
  /** A request signed with `secret` over `body` at `tsSec`. */
  sign(secret: string, body: string, tsSec: number): InboundRequest;
  /** Header whose absence means "missing_signature". */
  signatureHeader?: string;
  /** For schemes that carry the signature elsewhere: the request without it. */
  removeSignature?: (request: InboundRequest) => InboundRequest;
  /** The code expected without the signature header; default missing_signature. */
  missingCode?: VerifyFailureCode;
  /** How a signed timestamp is checked; false when nothing time-based is signed. */
  timestamp: "past" | "both" | false;
  /** The code for a wrong secret; default invalid_signature. */
  wrongCode?: VerifyFailureCode;
  /** False when the scheme does not cover the body (Mailgun). */
  bodySigned?: boolean;
  opts?: ProviderOptions;
}

/** The checks every signing scheme must pass, run with the test's own secrets and bodies. */
export function schemeContract(c: SchemeContract): void {
  const opts = c.opts ?? {};
  const verify = (request: InboundRequest, now = NOW) =>
    verifyInbound(c.provider, request, c.secrets, opts, now);
  const wrongCode = c.wrongCode ?? "invalid_signature";

  it("accepts a request signed with its own secret and body", () => {
    expectOk(verify(c.sign(c.secrets[0], c.body, NOW)));
  });

  it("accepts either secret during rotation", () => {
    expectOk(verify(c.sign(c.secrets[0], c.body, NOW)));
    expectOk(verify(c.sign(c.secrets[1], c.body, NOW)));
    expectOk(verifyInbound(c.provider, c.sign(c.secrets[1], c.body, NOW), [c.secrets[1]], opts, NOW));
    expectFail(
      verifyInbound(c.provider, c.sign(c.secrets[1], c.body, NOW), [c.secrets[0]], opts, NOW),
      wrongCode,
    );
  });

  it("rejects a wrong secret", () => {
    expectFail(verify(c.sign(c.wrongSecret, c.body, NOW)), wrongCode);
  });

  if (c.bodySigned !== false) {
    it("rejects a changed body", () => {
      const signed = c.sign(c.secrets[0], c.body, NOW);
      const changed = Buffer.from(signed.rawBody);
      // flip one byte of the body (the last character, which is signed in every scheme)
      changed[changed.length - 1] = changed[changed.length - 1]! ^ 0x01;
      expectFail(verify(withBody(signed, changed)), "invalid_signature");
      expectFail(verify(withBody(signed, `${signed.rawBody.toString()} `)), "invalid_signature");
    });
  }

  it("reports a missing signature", () => {
    const signed = c.sign(c.secrets[0], c.body, NOW);
    const stripped = c.removeSignature
      ? c.removeSignature(signed)
      : withoutHeader(signed, c.signatureHeader ?? "");
    expectFail(verify(stripped), c.missingCode ?? "missing_signature");
  });

  it("reports no configured secret as unsupported", () => {
    expectFail(verifyInbound(c.provider, c.sign(c.secrets[0], c.body, NOW), [], opts, NOW), "unsupported");
  });

  if (c.timestamp) {
    const direction = c.timestamp;
    it("rejects a stale timestamp and accepts one inside the tolerance", () => {
      expectFail(verify(c.sign(c.secrets[0], c.body, NOW - 301)), "timestamp_out_of_tolerance");
      expectFail(verify(c.sign(c.secrets[0], c.body, NOW - 86_400)), "timestamp_out_of_tolerance");
      expectOk(verify(c.sign(c.secrets[0], c.body, NOW - 299)));
      expectOk(verify(c.sign(c.secrets[0], c.body, NOW + 299)));
    });

    it(
      direction === "both"
        ? "rejects a timestamp too far in the future"
        : "accepts a future timestamp (only age is checked)",
      () => {
        const result = verify(c.sign(c.secrets[0], c.body, NOW + 3600));
        if (direction === "both") expectFail(result, "timestamp_out_of_tolerance");
        else expectOk(result);
      },
    );

    it("honours toleranceSec, and 0 disables the check", () => {
      const old = c.sign(c.secrets[0], c.body, NOW - 1000);
      expectOk(verifyInbound(c.provider, old, c.secrets, { ...opts, toleranceSec: 1200 }, NOW));
      expectFail(
        verifyInbound(c.provider, old, c.secrets, { ...opts, toleranceSec: 60 }, NOW),
        "timestamp_out_of_tolerance",
      );
      expectOk(verifyInbound(c.provider, old, c.secrets, { ...opts, toleranceSec: 0 }, NOW));
    });

    it("checks the signature before the clock (a forged stale request is invalid_signature)", () => {
      expectFail(verify(c.sign(c.wrongSecret, c.body, NOW - 86_400)), wrongCode);
    });
  } else {
    it("signs nothing time-based: an old request still verifies", () => {
      expectOk(verify(c.sign(c.secrets[0], c.body, NOW), NOW + 10 * 365 * 86_400));
    });
  }
}
