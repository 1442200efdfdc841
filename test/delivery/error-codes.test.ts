import { describe, expect, it } from "vitest";
import { classifyError, describeError } from "../../src/delivery/error-codes.js";
import { parseRetryAfter } from "../../src/delivery/retry-after.js";
import { SsrfBlockedError } from "../../src/delivery/ssrf/guarded-connect.js";

const coded = (code: string, message = code) => Object.assign(new Error(message), { code });

describe("classifyError", () => {
  it.each([
    ["ENOTFOUND", "dns"],
    ["EAI_AGAIN", "dns"],
    ["ECONNREFUSED", "connection_refused"],
    ["ECONNRESET", "connection_reset"],
    ["UND_ERR_SOCKET", "connection_reset"],
    ["UND_ERR_HEADERS_TIMEOUT", "timeout"],
    ["UND_ERR_BODY_TIMEOUT", "timeout"],
    ["UND_ERR_CONNECT_TIMEOUT", "timeout"],
    ["ETIMEDOUT", "timeout"],
    ["CERT_HAS_EXPIRED", "tls"],
    ["DEPTH_ZERO_SELF_SIGNED_CERT", "tls"],
    ["UNABLE_TO_VERIFY_LEAF_SIGNATURE", "tls"],
    ["ERR_TLS_CERT_ALTNAME_INVALID", "tls"],
    ["ERR_SSL_WRONG_VERSION_NUMBER", "tls"],
    ["EPROTO", "tls"],
    ["ERR_INVALID_URL", "invalid_url"],
    ["EWHATEVER", "other"],
  ])("%s → %s", (code, expected) => {
    expect(classifyError(coded(code))).toBe(expected);
  });

  it("looks through causes and happy-eyeballs AggregateErrors", () => {
    expect(classifyError(Object.assign(new Error("fetch failed"), { cause: coded("ECONNREFUSED") }))).toBe(
      "connection_refused",
    );
    const aggregate = Object.assign(new AggregateError([coded("ECONNREFUSED"), coded("ECONNREFUSED")], ""), {
      code: "ECONNREFUSED",
    });
    expect(classifyError(aggregate)).toBe("connection_refused");
    expect(classifyError(new AggregateError([coded("ENETUNREACH"), coded("ECONNRESET")]))).toBe("other");
    expect(describeError(new AggregateError([coded("EA", "first"), coded("EB", "second")], ""))).toBe(
      "first; second",
    );
  });

  it("recognises SSRF blocks and survives non-errors", () => {
    expect(classifyError(new SsrfBlockedError("h.test", "127.0.0.1"))).toBe("ssrf_blocked");
    expect(classifyError("string")).toBe("other");
    expect(classifyError(null)).toBe("other");
    expect(describeError(undefined)).toBe("undefined");
  });
});

describe("parseRetryAfter", () => {
  const now = Date.parse("2025-01-01T00:00:00Z");

  it("reads delay-seconds and HTTP dates", () => {
    expect(parseRetryAfter("2", now)).toBe(2000);
    expect(parseRetryAfter(" 0 ", now)).toBe(0);
    expect(parseRetryAfter("Wed, 01 Jan 2025 00:01:00 GMT", now)).toBe(60_000);
    expect(parseRetryAfter("Tue, 31 Dec 2024 23:00:00 GMT", now)).toBe(0);
    expect(parseRetryAfter("Sun Nov  6 08:49:37 1994", now)).toBe(0);
    expect(parseRetryAfter("Wednesday, 01-Jan-25 00:00:10 GMT", now)).toBe(10_000);
  });

  it("ignores absent or unparseable values", () => {
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter("-5", now)).toBeUndefined();
  });
});
