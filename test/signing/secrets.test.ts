import { describe, expect, it } from "vitest";
import { decodeSecret, generateSecret, isValidSecret } from "../../src/signing/secrets.js";

describe("secrets", () => {
  it("generates whsec_ + base64 of 24 random bytes", () => {
    const a = generateSecret();
    const b = generateSecret();
    expect(a).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/);
    expect(a).not.toBe(b);
    expect(decodeSecret(a)).toHaveLength(24);
    expect(isValidSecret(a)).toBe(true);
  });

  it("decodes the base64 after the prefix", () => {
    const key = Buffer.alloc(32, 7);
    expect(decodeSecret(`whsec_${key.toString("base64")}`).equals(key)).toBe(true);
  });

  it("rejects bad base64 and out-of-range lengths with a TypeError", () => {
    expect(() => decodeSecret("whsec_not base64!!")).toThrow(TypeError);
    expect(() => decodeSecret("whsec_")).toThrow(/base64/);
    expect(() => decodeSecret(`whsec_${Buffer.alloc(16).toString("base64")}`)).toThrow(
      /24 to 64 bytes, got 16/,
    );
    expect(() => decodeSecret(`whsec_${Buffer.alloc(65).toString("base64")}`)).toThrow(TypeError);
    expect(isValidSecret(`whsec_${Buffer.alloc(64).toString("base64")}`)).toBe(true);
    expect(isValidSecret("whsec_%%%%")).toBe(false);
  });
});
