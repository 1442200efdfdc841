import { describe, expect, it } from "vitest";
import { boundedMemo } from "../../src/core/bounded-memo.js";

describe("boundedMemo", () => {
  it("computes each key once, forgets everything at the bound, and never remembers a throw", () => {
    const calls: string[] = [];
    const memo = boundedMemo((key: string) => {
      calls.push(key);
      if (key === "bad") throw new Error("bad key");
      return { key };
    }, 2);

    const a = memo("a");
    expect(memo("a")).toBe(a);
    memo("b");
    expect(calls).toEqual(["a", "b"]);
    // A third key clears the two kept ones, so "a" is computed again afterwards.
    memo("c");
    expect(memo("a")).not.toBe(a);
    expect(calls).toEqual(["a", "b", "c", "a"]);

    expect(() => memo("bad")).toThrow("bad key");
    expect(() => memo("bad")).toThrow("bad key");
    expect(calls.filter((k) => k === "bad")).toHaveLength(2);
  });
});
