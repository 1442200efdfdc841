import { boundedMemo } from "../../core/bounded-memo.js";
import { type Cidr, cidrContains, type IpAddress, parseCidr, parseIp } from "./cidr.js";

/**
 * Which addresses a webhook may connect to. A customer controls the endpoint URL, so without this
 * check "https://my-hook.example" could resolve to 169.254.169.254 (cloud metadata), 127.0.0.1 or an
 * internal service. Only globally routable unicast is allowed, plus whatever the operator lists in
 * PIGEON_ALLOWED_NETWORKS (e.g. 127.0.0.0/8 for the dev mode and the demo).
 */

function blocks(list: string[]): Cidr[] {
  return list.map((text) => {
    const cidr = parseCidr(text);
    if (!cidr) throw new Error(`internal: bad built-in CIDR ${text}`);
    return cidr;
  });
}

// IANA IPv4 Special-Purpose Address Registry entries that are not globally reachable.
const IPV4_NOT_GLOBAL = blocks([
  "0.0.0.0/8", // "this network"; 0.0.0.0 reaches the local host on Linux
  "10.0.0.0/8", // private
  "100.64.0.0/10", // carrier-grade NAT shared space
  "127.0.0.0/8", // loopback
  "169.254.0.0/16", // link-local, including cloud metadata 169.254.169.254
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // documentation TEST-NET-1
  "192.88.99.0/24", // deprecated 6to4 relay anycast
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // documentation TEST-NET-2
  "203.0.113.0/24", // documentation TEST-NET-3
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, including broadcast 255.255.255.255
]);

// Global unicast IPv6 is allocated only from 2000::/3; everything outside it (::, ::1, fc00::/7,
// fe80::/10, fec0::/10, ff00::/8, 100::/64, 5f00::/16, 64:ff9b:1::/48, ...) is not global.
const IPV6_GLOBAL_UNICAST = blocks(["2000::/3"]);
// Carve-outs inside 2000::/3 that are not globally reachable (or whose reach we cannot vouch for).
const IPV6_NOT_GLOBAL = blocks([
  "2001::/23", // IETF protocol assignments: Teredo, benchmarking 2001:2::/48, ORCHID
  "2001:db8::/32", // documentation
  "3fff::/20", // documentation (RFC 9637)
]);
// IPv6 forms that carry an IPv4 address and reach it: classify the IPv4 address instead.
const IPV4_MAPPED = blocks(["::ffff:0:0/96"])[0]!;
const NAT64 = blocks(["64:ff9b::/96"])[0]!;
const SIX_TO_FOUR = blocks(["2002::/16"])[0]!;

function v4(bytes: Uint8Array): IpAddress {
  return { family: 4, bytes };
}

function inAny(list: Cidr[], ip: IpAddress): boolean {
  for (const cidr of list) if (cidrContains(cidr, ip)) return true;
  return false;
}

/** The IPv4 address an IPv4-mapped (::ffff:a.b.c.d) IPv6 address really is, else undefined. */
function unmapped(ip: IpAddress): IpAddress | undefined {
  return ip.family === 6 && cidrContains(IPV4_MAPPED, ip) ? v4(ip.bytes.subarray(12)) : undefined;
}

function globallyRoutable(ip: IpAddress): boolean {
  if (ip.family === 4) return !inAny(IPV4_NOT_GLOBAL, ip);
  if (cidrContains(IPV4_MAPPED, ip) || cidrContains(NAT64, ip))
    return globallyRoutable(v4(ip.bytes.subarray(12)));
  if (!inAny(IPV6_GLOBAL_UNICAST, ip) || inAny(IPV6_NOT_GLOBAL, ip)) return false;
  // 6to4 2002:AABB:CCDD::/48 tunnels to IPv4 AA.BB.CC.DD.
  if (cidrContains(SIX_TO_FOUR, ip)) return globallyRoutable(v4(ip.bytes.subarray(2, 6)));
  return true;
}

/** False for anything that is not a valid IP literal. Pure: no DNS, no I/O. */
export function isGloballyRoutable(ip: string): boolean {
  const parsed = parseIp(ip);
  return parsed !== undefined && globallyRoutable(parsed);
}

export class AddressPolicy {
  readonly #allowed: Cidr[];
  /** The policy never changes, and a sender meets the same few addresses on every request. */
  readonly #decided = boundedMemo((ip) => this.#decide(ip));

  constructor(allowed: Cidr[]) {
    this.#allowed = [...allowed];
  }

  /** Allowed if globally routable or inside an allow-listed network. Invalid input is refused. */
  isAllowed(ip: string): boolean {
    return this.#decided(ip);
  }

  #decide(ip: string): boolean {
    const parsed = parseIp(ip);
    if (!parsed) return false;
    if (this.#allowed.length > 0) {
      if (inAny(this.#allowed, parsed)) return true;
      // ::ffff:127.0.0.1 is the same socket peer as 127.0.0.1, so an IPv4 allow-list covers it.
      const mapped = unmapped(parsed);
      if (mapped && inAny(this.#allowed, mapped)) return true;
    }
    return globallyRoutable(parsed);
  }
}
