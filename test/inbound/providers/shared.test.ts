import { describe, expect, it } from "vitest";
import { safeEqual, safeEqualAny, safeEqualAnySecret } from "../../../src/inbound/providers/hmac.js";
import {
  answerHandshake,
  getByPointer,
  getProvider,
  inboundEventId,
  isValidPointer,
  PROVIDER_NAMES,
  toInboundRequest,
  verifyInbound,
} from "../../../src/inbound/providers/index.js";
import {
  checkTimestamp,
  parseUnixSeconds,
  resolveTolerance,
} from "../../../src/inbound/providers/timestamp.js";
import type { ProviderName } from "../../../src/inbound/providers/types.js";
import { forbidNetwork } from "./helpers.js";

forbidNetwork();

describe("safeEqual", () => {
  it("compares strings and buffers of any length without throwing", () => {
    expect(safeEqual("abc", "abc")).toBe(true);
    expect(safeEqual("abc", "abd")).toBe(false);
    expect(safeEqual("abc", "abcd")).toBe(false);
    expect(safeEqual("", "")).toBe(true);
    expect(safeEqual("", "x")).toBe(false);
    expect(safeEqual(Buffer.from([1, 2]), Buffer.from([1, 2]))).toBe(true);
    expect(safeEqual(Buffer.from([1, 2]), Buffer.from([1, 2, 0]))).toBe(false);
    expect(safeEqual("é", Buffer.from("é"))).toBe(true);
    expect(safeEqual("a".repeat(10_000), "b")).toBe(false);
    expect(safeEqualAny("k2", ["k1", "k2", "k3"])).toBe(true);
    expect(safeEqualAny("k4", ["k1", "k2"])).toBe(false);
    expect(safeEqualAny("k", [])).toBe(false);
  });

  it("compares a given credential with secrets of any length", () => {
    expect(safeEqualAnySecret("user:pass", ["other", "user:pass"])).toBe(true);
    expect(safeEqualAnySecret("user:pas", ["user:pass"])).toBe(false);
    expect(safeEqualAnySecret("user:passs", ["user:pass"])).toBe(false);
    expect(safeEqualAnySecret("", ["user:pass"])).toBe(false);
    expect(safeEqualAnySecret("k", [])).toBe(false);
  });
});

describe("timestamp", () => {
  it("parses only plain unix seconds", () => {
    expect(parseUnixSeconds("1700000000")).toBe(1700000000);
    for (const bad of [undefined, "", "-5", "1.5", "1e9", " 1", "0x10", "12345678901234567"]) {
      expect(parseUnixSeconds(bad)).toBeUndefined();
    }
  });

  it("resolves the tolerance: default 300, ≤ 0 disables, NaN keeps the default", () => {
    expect(resolveTolerance({})).toBe(300);
    expect(resolveTolerance({ toleranceSec: 60 })).toBe(60);
    expect(resolveTolerance({ toleranceSec: 0 })).toBe(Number.POSITIVE_INFINITY);
    expect(resolveTolerance({ toleranceSec: Number.NaN })).toBe(300);
  });

  it("checks age, and the future only in both-directions mode", () => {
    expect(checkTimestamp(1000, 1300, 300, "past").ok).toBe(true);
    expect(checkTimestamp(1000, 1301, 300, "past").ok).toBe(false);
    expect(checkTimestamp(2000, 1000, 300, "past").ok).toBe(true);
    expect(checkTimestamp(1300, 1000, 300, "both").ok).toBe(true);
    expect(checkTimestamp(1301, 1000, 300, "both")).toMatchObject({
      ok: false,
      code: "timestamp_out_of_tolerance",
    });
    expect(checkTimestamp(0, 1e9, Number.POSITIVE_INFINITY, "both").ok).toBe(true);
  });
});

describe("getByPointer (RFC 6901)", () => {
  // the example document of RFC 6901 section 5
  const doc = {
    foo: ["bar", "baz"],
    "": 0,
    "a/b": 1,
    "c%d": 2,
    "e^f": 3,
    "g|h": 4,
    "i\\j": 5,
    'k"l': 6,
    " ": 7,
    "m~n": 8,
  };

  it("evaluates the RFC examples (JSON string form)", () => {
    expect(getByPointer(doc, "")).toBe(doc);
    expect(getByPointer(doc, "/foo")).toEqual(["bar", "baz"]);
    expect(getByPointer(doc, "/foo/0")).toBe("bar");
    expect(getByPointer(doc, "/")).toBe(0);
    expect(getByPointer(doc, "/a~1b")).toBe(1);
    expect(getByPointer(doc, "/c%d")).toBe(2);
    expect(getByPointer(doc, "/e^f")).toBe(3);
    expect(getByPointer(doc, "/g|h")).toBe(4);
    expect(getByPointer(doc, "/i\\j")).toBe(5);
    expect(getByPointer(doc, '/k"l')).toBe(6);
    expect(getByPointer(doc, "/ ")).toBe(7);
    expect(getByPointer(doc, "/m~0n")).toBe(8);
  });

  it("evaluates the RFC examples (URI fragment form)", () => {
    expect(getByPointer(doc, "#")).toBe(doc);
    expect(getByPointer(doc, "#/foo/0")).toBe("bar");
    expect(getByPointer(doc, "#/a~1b")).toBe(1);
    expect(getByPointer(doc, "#/c%25d")).toBe(2);
    expect(getByPointer(doc, "#/%20")).toBe(7);
    expect(getByPointer(doc, "#/m~0n")).toBe(8);
  });

  it("unescapes ~01 to ~1, not /", () => {
    expect(getByPointer({ "~1": "tilde-one", "/": "slash" }, "/~01")).toBe("tilde-one");
  });

  it("returns undefined for what does not exist", () => {
    expect(getByPointer(doc, "/foo/2")).toBeUndefined();
    expect(getByPointer(doc, "/foo/-")).toBeUndefined();
    expect(getByPointer(doc, "/foo/01")).toBeUndefined();
    expect(getByPointer(doc, "/nope/deeper")).toBeUndefined();
    expect(getByPointer("scalar", "/x")).toBeUndefined();
    expect(getByPointer(null, "/x")).toBeUndefined();
    expect(getByPointer({}, "/__proto__")).toBeUndefined();
    expect(getByPointer({}, "/constructor")).toBeUndefined();
    expect(getByPointer({ a: null }, "/a")).toBeNull();
  });

  it("throws on malformed pointers", () => {
    expect(() => getByPointer(doc, "foo")).toThrow(TypeError);
    expect(() => getByPointer(doc, "/a~2")).toThrow(TypeError);
    expect(() => getByPointer(doc, "/a~")).toThrow(TypeError);
    expect(isValidPointer("/ok/~0~1")).toBe(true);
    expect(isValidPointer("bad")).toBe(false);
  });
});

describe("registry", () => {
  const all: ProviderName[] = [
    "standard-webhooks",
    "github",
    "stripe",
    "shopify",
    "slack",
    "twilio",
    "zoom",
    "meta",
    "square",
    "dropbox",
    "x",
    "sendgrid",
    "mailgun",
    "generic-hmac",
    "basic",
    "api-key",
    "none",
  ];

  it("knows every provider by name", () => {
    expect([...PROVIDER_NAMES].sort()).toEqual([...all].sort());
    for (const name of all) expect(getProvider(name).name).toBe(name);
    expect(Object.isFrozen(PROVIDER_NAMES)).toBe(true);
  });

  it("refuses unknown providers without throwing from verifyInbound", () => {
    expect(() => getProvider("paypal" as ProviderName)).toThrow(TypeError);
    expect(
      verifyInbound("paypal" as ProviderName, toInboundRequest({ url: "https://a.test/" }), ["s"]),
    ).toMatchObject({
      ok: false,
      code: "unsupported",
    });
    expect(
      answerHandshake("__proto__" as ProviderName, toInboundRequest({ url: "https://a.test/" }), []),
    ).toBeNull();
    expect(
      inboundEventId("constructor" as ProviderName, toInboundRequest({ url: "https://a.test/" })),
    ).toBeUndefined();
  });

  it("rejects every signing provider's unsigned request", () => {
    const request = toInboundRequest({ url: "https://a.test/in?x=1", body: '{"id":"evt"}' });
    for (const name of all) {
      if (name === "none") continue;
      const result = verifyInbound(name, request, ["whsec_c2VjcmV0LXNlY3JldC1zZWNyZXQ="], {
        generic: { header: "x-sig", algorithm: "sha256", encoding: "hex", signed: "body" },
      });
      expect(result.ok, name).toBe(false);
    }
  });

  it("builds requests with lower-case headers and a parsed query", () => {
    const request = toInboundRequest({
      method: "post",
      url: "https://a.test/in/src?validationToken=a%20b#frag",
      headers: { "Content-Type": "application/json", "X-Multi": ["a", "b"], Skip: undefined },
      body: "{}",
    });
    expect(request.method).toBe("POST");
    expect(request.headers).toEqual({ "content-type": "application/json", "x-multi": "a, b" });
    expect(request.query.get("validationToken")).toBe("a b");
    expect(request.rawBody.toString()).toBe("{}");
  });
});
