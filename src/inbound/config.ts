import { ConfigError, type PigeonConfig } from "../core/config.js";
import type { InboundSettings } from "./service.js";

type Env = Record<string, string | undefined>;

/** Default cap on items in flight across all sources: enough to overlap slow handlers without
 * letting a backlog open thousands of concurrent calls to whatever the handlers talk to. */
export const DEFAULT_INBOUND_CONCURRENCY = 64;

/**
 * Inbound settings from the engine's config plus two variables of their own:
 * PIGEON_INBOUND_HANDLER (a module registering handlers) and PIGEON_INBOUND_CONCURRENCY.
 */
export function inboundSettings(config: Readonly<PigeonConfig>, env: Env = process.env): InboundSettings {
  const raw = env.PIGEON_INBOUND_CONCURRENCY?.trim();
  let globalConcurrency = DEFAULT_INBOUND_CONCURRENCY;
  if (raw) {
    globalConcurrency = Number(raw);
    if (!Number.isInteger(globalConcurrency) || globalConcurrency < 1 || globalConcurrency > 10_000)
      throw new ConfigError(
        "PIGEON_INBOUND_CONCURRENCY",
        `expected an integer from 1 to 10000, got "${raw}"`,
      );
  }
  const handlerModule = env.PIGEON_INBOUND_HANDLER?.trim();
  return Object.freeze({
    maxBodyBytes: config.maxPayloadBytes,
    leaseMs: config.leaseMs,
    pollIntervalMs: config.pollIntervalMs,
    globalConcurrency,
    handlerModule: handlerModule ? handlerModule : undefined,
  });
}
