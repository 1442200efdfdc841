import { createHash, createHmac, timingSafeEqual } from "node:crypto";

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

function toBytes(value: Bytes): Uint8Array {
  return typeof value === "string" ? Buffer.from(value, "utf8") : value;
}

/**
 * Constant-time equality of two strings (UTF-8) or byte arrays. Only the lengths may show in the
 * timing, and a signature's length is public (it is fixed by the scheme), so unequal lengths
 * return early; equal lengths are compared by timingSafeEqual, which reads every byte. (This used
 * to MAC both sides first to hide the length too: two HMACs per comparison, about a tenth of the
 * intake's CPU per request, to hide nothing secret.)
 */
export function safeEqual(a: Bytes, b: Bytes): boolean {
  const left = toBytes(a);
  const right = toBytes(b);
  return left.byteLength === right.byteLength && timingSafeEqual(left, right);
}

/**
 * Constant-time equality where the expected value is itself the secret (a password, an API key, a
 * verify token): both sides are hashed first, so not even the secret's length shows.
 */
export function safeEqualSecret(given: Bytes, secret: Bytes): boolean {
  const digest = (value: Bytes) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(secret)) && safeEqual(given, secret);
}

/** True when `given` equals any of the secrets; every secret is compared (no early exit). */
export function safeEqualAnySecret(given: Bytes, secrets: readonly Bytes[]): boolean {
  let found = false;
  for (const secret of secrets) {
    if (safeEqualSecret(given, secret)) found = true;
  }
  return found;
}

/** True when any candidate equals `expected`; every candidate is compared (no early exit). */
export function safeEqualAny(expected: Bytes, candidates: readonly Bytes[]): boolean {
  let found = false;
  for (const candidate of candidates) {
    if (safeEqual(expected, candidate)) found = true;
  }
  return found;
}
