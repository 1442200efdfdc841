import { createHash, createHmac, randomBytes, timingSafeEqual } from "node:crypto";

export type HmacAlgorithm = "sha1" | "sha256" | "sha512";
export type Bytes = string | Uint8Array;

/** HMAC over the concatenation of `parts`; strings are UTF-8. */
export function hmac(algorithm: HmacAlgorithm, key: Bytes, ...parts: Bytes[]): Buffer {
  const mac = createHmac(algorithm, key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

export function hmacHex(algorithm: HmacAlgorithm, key: Bytes, ...parts: Bytes[]): string {
  return hmac(algorithm, key, ...parts).toString("hex");
}

export function hmacBase64(algorithm: HmacAlgorithm, key: Bytes, ...parts: Bytes[]): string {
  return hmac(algorithm, key, ...parts).toString("base64");
}

export function sha256Hex(data: Bytes): string {
  return createHash("sha256").update(data).digest("hex");
}

// Both sides are MACed under a per-process random key before timingSafeEqual: the compared
// buffers always have the same length (so timingSafeEqual never throws and nothing leaks
// through an early length check), and the attacker cannot precompute the MAC of anything.
const COMPARE_KEY = randomBytes(32);

function byteLength(value: Bytes): number {
  return typeof value === "string" ? Buffer.byteLength(value, "utf8") : value.byteLength;
}

/** Constant-time equality of two strings (UTF-8) or byte arrays, of any lengths. */
export function safeEqual(a: Bytes, b: Bytes): boolean {
  const macA = createHmac("sha256", COMPARE_KEY).update(a).digest();
  const macB = createHmac("sha256", COMPARE_KEY).update(b).digest();
  const same = timingSafeEqual(macA, macB);
  // The length check is redundant given the MAC, but keeps the function obviously correct.
  return same && byteLength(a) === byteLength(b);
}

/** True when any candidate equals `expected`; every candidate is compared (no early exit). */
export function safeEqualAny(expected: Bytes, candidates: readonly Bytes[]): boolean {
  let found = false;
  for (const candidate of candidates) {
    if (safeEqual(expected, candidate)) found = true;
  }
  return found;
}
