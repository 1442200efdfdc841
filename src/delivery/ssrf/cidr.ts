import { isIPv4, isIPv6 } from "node:net";

/**
 * IP addresses and CIDR blocks as raw bytes (4 for IPv4, 16 for IPv6), so one prefix comparison
 * serves both families and no BigInt or string juggling happens on the connect path.
 */
export interface IpAddress {
  family: 4 | 6;
  bytes: Uint8Array;
}

export interface Cidr extends IpAddress {
  /** Number of leading bits that must match, 0..32 or 0..128. */
  prefix: number;
  /** The entry as written, for error messages and logs. */
  source: string;
}

function parseV4(text: string): Uint8Array | undefined {
  // isIPv4 accepts only canonical dotted quads (no octal, no shorthand such as "127.1").
  if (!isIPv4(text)) return undefined;
  const parts = text.split(".");
  return Uint8Array.from(parts, Number);
}

function groupsOf(part: string): number[] | undefined {
  if (part === "") return [];
  const groups: number[] = [];
  for (const group of part.split(":")) {
    if (group.includes(".")) {
      // Trailing dotted quad, as in ::ffff:127.0.0.1: two 16-bit groups.
      const v4 = parseV4(group);
      if (!v4) return undefined;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
    } else {
      groups.push(Number.parseInt(group, 16));
    }
  }
  return groups;
}

function parseV6(text: string): Uint8Array | undefined {
  // A zone id (fe80::1%eth0) names an interface, not part of the address.
  const zone = text.indexOf("%");
  const address = zone === -1 ? text : text.slice(0, zone);
  if (!isIPv6(address)) return undefined;
  const gap = address.indexOf("::");
  const head = groupsOf(gap === -1 ? address : address.slice(0, gap));
  const tail = gap === -1 ? [] : groupsOf(address.slice(gap + 2));
  if (!head || !tail) return undefined;
  const zeros = gap === -1 ? 0 : 8 - head.length - tail.length;
  const groups = [...head, ...new Array<number>(zeros).fill(0), ...tail];
  if (groups.length !== 8) return undefined;
  const bytes = new Uint8Array(16);
  groups.forEach((g, i) => {
    bytes[i * 2] = g >> 8;
    bytes[i * 2 + 1] = g & 0xff;
  });
  return bytes;
}

/** Parse an IPv4 or IPv6 literal (brackets allowed, as in URLs); undefined if it is not one. */
export function parseIp(text: string): IpAddress | undefined {
  const bare = text.startsWith("[") && text.endsWith("]") ? text.slice(1, -1) : text;
  const v4 = parseV4(bare);
  if (v4) return { family: 4, bytes: v4 };
  const v6 = parseV6(bare);
  if (v6) return { family: 6, bytes: v6 };
  return undefined;
}

const PREFIX = /^\d{1,3}$/;

/**
 * Parse "addr/prefix" (or a bare address, meaning a single host). Host bits below the prefix are
 * cleared, so "10.1.2.3/8" means 10.0.0.0/8 as most tools read it. Undefined if invalid.
 */
export function parseCidr(text: string): Cidr | undefined {
  const source = text.trim();
  const slash = source.indexOf("/");
  const ip = parseIp(slash === -1 ? source : source.slice(0, slash));
  if (!ip) return undefined;
  const bits = ip.bytes.length * 8;
  let prefix = bits;
  if (slash !== -1) {
    const rawPrefix = source.slice(slash + 1);
    if (!PREFIX.test(rawPrefix)) return undefined;
    prefix = Number(rawPrefix);
    if (prefix > bits) return undefined;
  }
  const bytes = ip.bytes.slice();
  for (let bit = prefix; bit < bits; bit++) bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  return { family: ip.family, bytes, prefix, source };
}

/** Parse a comma-separated list; empty entries are skipped. Throws naming the first bad entry. */
export function parseCidrList(csv: string, variable = "PIGEON_ALLOWED_NETWORKS"): Cidr[] {
  const list: Cidr[] = [];
  for (const entry of csv.split(",")) {
    const trimmed = entry.trim();
    if (trimmed === "") continue;
    const cidr = parseCidr(trimmed);
    if (!cidr) {
      throw new Error(
        `${variable}: "${trimmed}" is not a valid CIDR (expected e.g. 127.0.0.0/8, 10.0.0.0/8 or ::1/128)`,
      );
    }
    list.push(cidr);
  }
  return list;
}

/** True when ip lies inside cidr. Families never mix: IPv4-mapped IPv6 is the caller's job. */
export function cidrContains(cidr: Cidr, ip: IpAddress): boolean {
  if (cidr.family !== ip.family) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== ip.bytes[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (ip.bytes[whole]! & mask) === cidr.bytes[whole];
}
