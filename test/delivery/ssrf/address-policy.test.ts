import { describe, expect, it } from "vitest";
import { AddressPolicy, isGloballyRoutable } from "../../../src/delivery/ssrf/address-policy.js";
import { parseCidrList } from "../../../src/delivery/ssrf/cidr.js";

// Pure classification: these strings are never connected to.
const NOT_GLOBAL = [
  "0.0.0.0",
  "0.1.2.3",
  "10.0.0.1",
  "10.255.255.255",
  "100.64.0.1",
  "100.127.255.254",
  "127.0.0.1",
  "127.8.9.10",
  "169.254.169.254",
  "172.16.0.1",
  "172.31.255.254",
  "192.0.0.8",
  "192.0.2.1",
  "192.168.0.1",
  "198.18.0.1",
  "198.19.255.255",
  "198.51.100.7",
  "203.0.113.9",
  "224.0.0.1",
  "239.255.255.250",
  "240.0.0.1",
  "255.255.255.255",
  "::",
  "::1",
  "[::1]",
  "fc00::1",
  "fd12:3456::1",
  "fe80::1",
  "fe80::1%eth0",
  "fec0::1",
  "ff02::1",
  "2001:db8::1",
  "2001::1",
  "3fff::1",
  "100::1",
  "::ffff:127.0.0.1",
  "::ffff:7f00:1",
  "::ffff:10.0.0.1",
  "::ffff:169.254.169.254",
  "64:ff9b::127.0.0.1",
  "64:ff9b::a00:1",
  "2002:7f00:1::1",
  "2002:c0a8:101::1",
  "::127.0.0.1",
  "not-an-ip",
  "",
];

const GLOBAL = [
  "8.8.8.8",
  "1.1.1.1",
  "93.184.216.34",
  "100.63.255.255",
  "100.128.0.0",
  "172.15.255.255",
  "172.32.0.0",
  "192.0.3.1",
  "198.17.255.255",
  "198.20.0.0",
  "223.255.255.255",
  "2606:4700:4700::1111",
  "2a00:1450:4001::200e",
  "::ffff:8.8.8.8",
  "64:ff9b::808:808",
  "2002:808:808::1",
];

describe("isGloballyRoutable", () => {
  it.each(NOT_GLOBAL)("%s is not globally routable", (ip) => {
    expect(isGloballyRoutable(ip)).toBe(false);
  });
  it.each(GLOBAL)("%s is globally routable", (ip) => {
    expect(isGloballyRoutable(ip)).toBe(true);
  });
});

describe("AddressPolicy", () => {
  it("allows only globally routable addresses by default", () => {
    const policy = new AddressPolicy([]);
    expect(policy.isAllowed("8.8.8.8")).toBe(true);
    expect(policy.isAllowed("127.0.0.1")).toBe(false);
    expect(policy.isAllowed("::1")).toBe(false);
    expect(policy.isAllowed("10.1.2.3")).toBe(false);
    expect(policy.isAllowed("garbage")).toBe(false);
  });

  it("adds the allow-listed networks, and an IPv4 entry covers its IPv4-mapped form", () => {
    const policy = new AddressPolicy(parseCidrList("127.0.0.0/8,::1/128"));
    expect(policy.isAllowed("127.0.0.1")).toBe(true);
    expect(policy.isAllowed("127.3.4.5")).toBe(true);
    expect(policy.isAllowed("::1")).toBe(true);
    expect(policy.isAllowed("::ffff:127.0.0.1")).toBe(true);
    expect(policy.isAllowed("10.0.0.1")).toBe(false);
    expect(policy.isAllowed("169.254.169.254")).toBe(false);
    expect(policy.isAllowed("8.8.8.8")).toBe(true);
  });
});
