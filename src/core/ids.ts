import { randomBytes } from "node:crypto";

/**
 * Prefixed, time-sortable ids (`msg_01JD…`): 48 bits of milliseconds then 80 random bits,
 * Crockford base32. Sorting ids sorts by creation time, which is what Svix-style iterators
 * (`iterator=<last id>`) rely on for stable pagination.
 */
const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

export type IdPrefix = "app" | "ep" | "msg" | "atmpt" | "dlv" | "src" | "in" | "evt" | "op";

let lastMs = 0;
let lastRandom: Uint8Array = new Uint8Array(10);

function encodeTime(ms: number): string {
  let out = "";
  let value = ms;
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[value % 32] + out;
    value = Math.floor(value / 32);
  }
  return out;
}

function encodeRandom(bytes: Uint8Array): string {
  // 80 bits → 16 base32 characters, 5 bits at a time.
  let out = "";
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  return out;
}

/** Within one millisecond the random part is incremented, so ids stay strictly increasing. */
function nextRandom(ms: number): Uint8Array {
  if (ms === lastMs) {
    const next = new Uint8Array(lastRandom);
    for (let i = next.length - 1; i >= 0; i--) {
      if (next[i] === 255) {
        next[i] = 0;
      } else {
        next[i] = (next[i] ?? 0) + 1;
        break;
      }
    }
    lastRandom = next;
    return next;
  }
  lastMs = ms;
  lastRandom = takeRandom(10);
  return lastRandom;
}

/**
 * Random bytes drawn from a pool refilled 4 KiB at a time: each draw from the OS is a system
 * call, which on a small VM costs as much as building the rest of the id.
 */
const RANDOM_POOL_BYTES = 4096;
let randomPool = randomBytes(RANDOM_POOL_BYTES);
let randomPoolAt = 0;

function takeRandom(length: number): Uint8Array {
  if (randomPoolAt + length > randomPool.length) {
    randomPool = randomBytes(RANDOM_POOL_BYTES);
    randomPoolAt = 0;
  }
  const bytes = new Uint8Array(randomPool.subarray(randomPoolAt, randomPoolAt + length));
  randomPoolAt += length;
  return bytes;
}

export function newId(prefix: IdPrefix, nowMs: number = Date.now()): string {
  const ms = Math.max(nowMs, lastMs);
  return `${prefix}_${encodeTime(ms)}${encodeRandom(nextRandom(ms))}`;
}

/** The smallest id of a prefix created at or after `ms`; used to turn a time into an iterator bound. */
export function idLowerBoundForTime(prefix: IdPrefix, ms: number): string {
  return `${prefix}_${encodeTime(ms)}0000000000000000`;
}

export function hasPrefix(value: string, prefix: IdPrefix): boolean {
  return value.startsWith(`${prefix}_`) && value.length === prefix.length + 27;
}
