import type { LookupAddress, LookupAllOptions } from "node:dns";
import { describe, expect, it } from "vitest";
import { AddressPolicy } from "../../../src/delivery/ssrf/address-policy.js";
import { parseCidrList } from "../../../src/delivery/ssrf/cidr.js";
import { createGuardedLookup, SsrfBlockedError } from "../../../src/delivery/ssrf/guarded-connect.js";

// A fake resolver: these tests exercise the decision only and never touch the network.
function fakeResolver(answer: LookupAddress[] | NodeJS.ErrnoException) {
  const calls: LookupAllOptions[] = [];
  const resolve = (
    _host: string,
    options: LookupAllOptions,
    cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
  ) => {
    calls.push(options);
    if (answer instanceof Error) cb(answer, []);
    else cb(null, answer);
  };
  return { resolve, calls };
}

interface LookupOutcome {
  err: NodeJS.ErrnoException | null;
  address: string | LookupAddress[];
  family: number | undefined;
}

function run(policy: AddressPolicy, answer: LookupAddress[] | NodeJS.ErrnoException, all: boolean) {
  const { resolve, calls } = fakeResolver(answer);
  const lookup = createGuardedLookup(policy, resolve);
  let outcome: LookupOutcome | undefined;
  lookup("hooks.example.test", { all }, (err, address, family) => {
    outcome = { err, address, family };
  });
  return { outcome: outcome!, calls };
}

const v4 = (address: string): LookupAddress => ({ address, family: 4 });
const v6 = (address: string): LookupAddress => ({ address, family: 6 });

describe("createGuardedLookup", () => {
  const strict = new AddressPolicy([]);
  const loopbackAllowed = new AddressPolicy(parseCidrList("127.0.0.0/8"));

  it("always asks the resolver for every address", () => {
    const { calls } = run(strict, [v4("93.184.216.34")], false);
    expect(calls[0]?.all).toBe(true);
  });

  it("passes allowed addresses through in the shape the socket asked for", () => {
    const single = run(strict, [v4("93.184.216.34"), v6("2606:2800:220:1::1")], false).outcome;
    expect(single).toEqual({ err: null, address: "93.184.216.34", family: 4 });
    const all = run(strict, [v4("93.184.216.34")], true).outcome;
    expect(all).toEqual({ err: null, address: [v4("93.184.216.34")], family: undefined });
  });

  it("refuses when ANY resolved address is not allowed, even if another one is", () => {
    const { outcome } = run(strict, [v4("93.184.216.34"), v4("127.0.0.1")], true);
    expect(outcome.err).toBeInstanceOf(SsrfBlockedError);
    expect(outcome.err?.code).toBe("ERR_PIGEON_SSRF_BLOCKED");
    expect(outcome.err?.message).toMatch(/hooks\.example\.test resolves to 127\.0\.0\.1/);
    for (const bad of ["169.254.169.254", "10.0.0.5", "::ffff:192.168.0.1", "fd00::1"]) {
      expect(run(strict, [v4("93.184.216.34"), v6(bad)], false).outcome.err, bad).toBeInstanceOf(
        SsrfBlockedError,
      );
    }
  });

  it("honours the allow-list", () => {
    expect(run(loopbackAllowed, [v4("127.0.0.1")], false).outcome.err).toBeNull();
    expect(run(loopbackAllowed, [v4("127.0.0.1"), v6("::1")], true).outcome.err).toBeInstanceOf(
      SsrfBlockedError,
    );
  });

  it("passes resolver errors through and treats an empty answer as ENOTFOUND", () => {
    const failure: NodeJS.ErrnoException = Object.assign(new Error("getaddrinfo EAI_AGAIN x"), {
      code: "EAI_AGAIN",
    });
    expect(run(strict, failure, false).outcome.err).toBe(failure);
    expect(run(strict, [], true).outcome.err?.code).toBe("ENOTFOUND");
  });
});
