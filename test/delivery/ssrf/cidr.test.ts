import { describe, expect, it } from "vitest";
import { cidrContains, parseCidr, parseCidrList, parseIp } from "../../../src/delivery/ssrf/cidr.js";

const ip = (text: string) => {
  const parsed = parseIp(text);
  if (!parsed) throw new Error(`test: bad ip ${text}`);
  return parsed;
};

describe("parseIp", () => {
  it("parses IPv4, IPv6, bracketed, embedded-v4 and zoned forms", () => {
    expect(Array.from(ip("192.168.1.20").bytes)).toEqual([192, 168, 1, 20]);
    expect(ip("::1").bytes[15]).toBe(1);
    expect(ip("[::1]").family).toBe(6);
    expect(Array.from(ip("::ffff:127.0.0.1").bytes.subarray(10))).toEqual([0xff, 0xff, 127, 0, 0, 1]);
    expect(Array.from(ip("2001:db8::8:800:200c:417a").bytes)).toEqual([
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0x08, 0x08, 0, 0x20, 0x0c, 0x41, 0x7a,
    ]);
    expect(ip("fe80::1%eth0").bytes[0]).toBe(0xfe);
    expect(Array.from(ip("::").bytes).every((b) => b === 0)).toBe(true);
  });

  it("rejects non-addresses", () => {
    for (const bad of [
      "",
      "localhost",
      "300.1.1.1",
      "1.2.3",
      "127.1",
      "01.2.3.4",
      "1::2::3",
      "gggg::1",
      "[::1",
    ]) {
      expect(parseIp(bad), bad).toBeUndefined();
    }
  });
});

describe("parseCidrList", () => {
  it("parses IPv4 and IPv6 CIDRs, bare hosts, and skips blanks", () => {
    const list = parseCidrList(" 127.0.0.0/8, ::1/128 ,10.0.0.0/8,,192.0.2.7");
    expect(list.map((c) => [c.family, c.prefix, c.source])).toEqual([
      [4, 8, "127.0.0.0/8"],
      [6, 128, "::1/128"],
      [4, 8, "10.0.0.0/8"],
      [4, 32, "192.0.2.7"],
    ]);
    expect(parseCidrList("")).toEqual([]);
  });

  it("names the bad entry in the error", () => {
    expect(() => parseCidrList("127.0.0.0/8, 300.1.1.1/8")).toThrow(
      'PIGEON_ALLOWED_NETWORKS: "300.1.1.1/8" is not a valid CIDR',
    );
    for (const bad of [
      "10.0.0.0/33",
      "::1/129",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "example.com/8",
    ]) {
      expect(() => parseCidrList(bad), bad).toThrow(`"${bad}" is not a valid CIDR`);
    }
    expect(() => parseCidrList("nope", "MY_VAR")).toThrow(/^MY_VAR: "nope"/);
  });
});

describe("cidrContains", () => {
  const c = (text: string) => parseCidr(text)!;

  it("matches on the prefix bits, including non-octet prefixes", () => {
    expect(cidrContains(c("127.0.0.0/8"), ip("127.255.1.2"))).toBe(true);
    expect(cidrContains(c("127.0.0.0/8"), ip("128.0.0.1"))).toBe(false);
    expect(cidrContains(c("172.16.0.0/12"), ip("172.31.255.255"))).toBe(true);
    expect(cidrContains(c("172.16.0.0/12"), ip("172.32.0.0"))).toBe(false);
    expect(cidrContains(c("0.0.0.0/0"), ip("8.8.8.8"))).toBe(true);
    expect(cidrContains(c("fe80::/10"), ip("febf::1"))).toBe(true);
    expect(cidrContains(c("fe80::/10"), ip("fec0::1"))).toBe(false);
  });

  it("clears host bits and never mixes families", () => {
    expect(cidrContains(c("10.9.9.9/8"), ip("10.0.0.1"))).toBe(true);
    expect(cidrContains(c("::/0"), ip("127.0.0.1"))).toBe(false);
    expect(cidrContains(c("0.0.0.0/0"), ip("::1"))).toBe(false);
  });
});
