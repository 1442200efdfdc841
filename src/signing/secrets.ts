import { randomBytes } from "node:crypto";

/**
 * Symmetric signing secrets in the Standard Webhooks / Svix serialization: `whsec_<base64>`.
 * The prefix lets receivers (and our own verifiers) tell the scheme from the secret alone.
 */
export const SECRET_PREFIX = "whsec_";

/** 24 bytes (192 bits) is what Svix generates; it is also the smallest key we accept. */
const GENERATED_BYTES = 24;
const MIN_BYTES = 24;
/** HMAC-SHA256 hashes keys longer than its 64-byte block, so longer keys add nothing. */
const MAX_BYTES = 64;

const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(GENERATED_BYTES).toString("base64");
}

/**
 * Decode `whsec_<base64>` (the prefix is optional, as in the reference libraries) to raw key bytes.
 * Node's base64 decoder silently skips characters outside the alphabet, so the text is checked
 * first and then re-encoded: a secret that does not round-trip is a typo, not a key.
 */
export function decodeSecret(secret: string): Buffer {
  const encoded = secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret;
  if (!BASE64.test(encoded)) {
    throw new TypeError(`Invalid secret: expected "${SECRET_PREFIX}" followed by standard base64`);
  }
  const key = Buffer.from(encoded, "base64");
  if (key.toString("base64").replace(/=+$/, "") !== encoded.replace(/=+$/, "")) {
    throw new TypeError(`Invalid secret: "${SECRET_PREFIX}..." is not canonical base64`);
  }
  if (key.length < MIN_BYTES || key.length > MAX_BYTES) {
    throw new TypeError(
      `Invalid secret: the key must decode to ${MIN_BYTES} to ${MAX_BYTES} bytes, got ${key.length}`,
    );
  }
  return key;
}

export function isValidSecret(secret: string): boolean {
  try {
    decodeSecret(secret);
    return true;
  } catch {
    return false;
  }
}
