import type { ProcessingSettings } from "./source-options.js";

/** Jitter spreads the retries of items that failed together (a handler's dependency was down). */
const JITTER = 0.2;

/**
 * Delay before try `attempt + 1` after try `attempt` failed: doubling from `retryBaseMs`, capped
 * at `retryMaxMs`, ±20 % jitter. `random` is injectable for tests.
 */
export function retryDelayMs(
  attempt: number,
  settings: Pick<ProcessingSettings, "retryBaseMs" | "retryMaxMs">,
  random: () => number = Math.random,
): number {
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const base = Math.min(settings.retryMaxMs, settings.retryBaseMs * 2 ** exponent);
  return Math.max(0, Math.round(base * (1 + JITTER * (2 * random() - 1))));
}

/** A handler throws this to say the item can never succeed: it is `failed` at once, not retried. */
export class NonRetryableError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "NonRetryableError";
  }
}
