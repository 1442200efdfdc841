import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from "node:dns";
import { isIP, type LookupFunction } from "node:net";
import { buildConnector } from "undici";
import type { AddressPolicy } from "./address-policy.js";

/**
 * The SSRF guard at the only place that cannot be bypassed: the moment a socket picks its peer.
 * Checking the URL's hostname earlier is not enough, because DNS can answer differently between
 * the check and the connect (DNS rebinding). So the lookup that the socket itself uses resolves,
 * checks every address, and hands back only addresses it checked.
 */

export const SSRF_BLOCKED_CODE = "ERR_PIGEON_SSRF_BLOCKED";

export class SsrfBlockedError extends Error {
  readonly code = SSRF_BLOCKED_CODE;

  constructor(
    readonly hostname: string,
    readonly address: string,
  ) {
    const target = hostname === address ? address : `${hostname} resolves to ${address}, which`;
    super(
      `Blocked by the SSRF policy: ${target} is not a globally routable address and is not in PIGEON_ALLOWED_NETWORKS`,
    );
    this.name = "SsrfBlockedError";
  }
}

type ResolveAll = (
  hostname: string,
  options: LookupAllOptions,
  callback: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

/**
 * A `lookup` for net/tls.connect. Resolves all addresses and refuses the connection if ANY is not
 * allowed: refusing only the bad ones would still let an attacker steer traffic by ordering.
 * Answers in whichever shape the caller asked for (Node's happy-eyeballs path asks for `all`).
 */
export function createGuardedLookup(policy: AddressPolicy, resolve: ResolveAll = dnsLookup): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, "");
      const first = addresses[0];
      if (!first) {
        const empty: NodeJS.ErrnoException = new Error(`getaddrinfo ENOTFOUND ${hostname}`);
        empty.code = "ENOTFOUND";
        return callback(empty, "");
      }
      for (const { address } of addresses) {
        if (!policy.isAllowed(address)) return callback(new SsrfBlockedError(hostname, address), "");
      }
      if (options.all) return callback(null, addresses);
      return callback(null, first.address, first.family);
    });
  };
}

export interface GuardedConnectorOptions {
  /** Milliseconds to establish TCP (+TLS). Default 10 000, undici's own default. */
  connectTimeoutMs?: number;
  /** Resolver override for tests. Default: dns.lookup (the OS resolver, /etc/hosts included). */
  resolve?: ResolveAll;
}

/**
 * An undici connector that (1) refuses IP-literal hosts the policy does not allow, since Node
 * never calls `lookup` for them, and (2) connects everything else through the guarded lookup.
 * The sender also checks IP literals before dispatching; this second check keeps the Agent safe
 * on its own, whoever uses it.
 */
export function createGuardedConnector(
  policy: AddressPolicy,
  opts: GuardedConnectorOptions = {},
): buildConnector.connector {
  const connect = buildConnector({
    timeout: opts.connectTimeoutMs ?? 10_000,
    lookup: createGuardedLookup(policy, opts.resolve),
  });
  return (options, callback) => {
    if (isIP(options.hostname) !== 0 && !policy.isAllowed(options.hostname)) {
      callback(new SsrfBlockedError(options.hostname, options.hostname), null);
      return;
    }
    connect(options, callback);
  };
}
