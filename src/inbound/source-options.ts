import type { ValidationIssue } from "../core/errors.js";
import { genericOptionsError, isProviderName, isValidPointer, PROVIDER_NAMES } from "./providers/index.js";
import type { ProviderOptions } from "./providers/types.js";
import type { FieldRef, SourceOptions, StaleAction } from "./types.js";

/** Processing settings of a source with every default filled in. */
export interface ProcessingSettings {
  concurrency: number;
  ratePerSecond: number | null;
  maxAttempts: number;
  retryBaseMs: number;
  retryMaxMs: number;
  handlerTimeoutMs: number;
  staleAction: StaleAction;
}

/**
 * Defaults: 8 at once keeps a slow handler from hogging the process while leaving room for
 * bursts; 8 tries with doubling from 1 s cap out around 2 min of cumulative waiting before the
 * 10-minute ceiling matters, which rides out a restart of whatever the handler calls.
 */
export const PROCESSING_DEFAULTS: Readonly<ProcessingSettings> = Object.freeze({
  concurrency: 8,
  ratePerSecond: null,
  maxAttempts: 8,
  retryBaseMs: 1000,
  retryMaxMs: 10 * 60 * 1000,
  handlerTimeoutMs: 30_000,
  staleAction: "skip",
});

export const LIMITS = Object.freeze({
  concurrency: [1, 1000],
  ratePerSecond: [1, 100_000],
  maxAttempts: [1, 100],
  retryBaseMs: [10, 24 * 3600 * 1000],
  retryMaxMs: [10, 7 * 24 * 3600 * 1000],
  handlerTimeoutMs: [100, 15 * 60 * 1000],
  toleranceSec: [0, 7 * 24 * 3600],
  secrets: [0, 16],
  secretLength: [1, 1024],
} as const);

export function resolveProcessing(options: SourceOptions): ProcessingSettings {
  return {
    concurrency: options.concurrency ?? PROCESSING_DEFAULTS.concurrency,
    ratePerSecond: options.ratePerSecond ?? PROCESSING_DEFAULTS.ratePerSecond,
    maxAttempts: options.maxAttempts ?? PROCESSING_DEFAULTS.maxAttempts,
    retryBaseMs: options.retryBaseMs ?? PROCESSING_DEFAULTS.retryBaseMs,
    retryMaxMs: options.retryMaxMs ?? PROCESSING_DEFAULTS.retryMaxMs,
    handlerTimeoutMs: options.handlerTimeoutMs ?? PROCESSING_DEFAULTS.handlerTimeoutMs,
    staleAction: options.staleAction ?? PROCESSING_DEFAULTS.staleAction,
  };
}

/** The subset of source options the providers layer reads. */
export function providerOptions(options: SourceOptions): ProviderOptions {
  const out: ProviderOptions = {};
  if (options.toleranceSec !== undefined) out.toleranceSec = options.toleranceSec;
  if (options.publicUrl !== undefined) out.publicUrl = options.publicUrl;
  if (options.generic !== undefined) out.generic = options.generic;
  if (options.apiKeyHeader !== undefined) out.apiKeyHeader = options.apiKeyHeader;
  if (options.verifyToken !== undefined) out.verifyToken = options.verifyToken;
  if (options.allowSha1 !== undefined) out.allowSha1 = options.allowSha1;
  if (options.eventIdHeader !== undefined) out.eventIdHeader = options.eventIdHeader;
  if (options.eventIdPointer !== undefined) out.eventIdPointer = options.eventIdPointer;
  return out;
}

type Loc = (string | number)[];

function issue(loc: Loc, msg: string): ValidationIssue {
  return { loc, msg, type: "value_error" };
}

function checkInteger(issues: ValidationIssue[], loc: Loc, value: unknown, [min, max]: readonly number[]) {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min! || value > max!)
    issues.push(issue(loc, `must be an integer from ${min} to ${max}`));
}

function checkFieldRef(issues: ValidationIssue[], loc: Loc, value: FieldRef | undefined) {
  if (value === undefined) return;
  const ref = value as Partial<Record<"pointer" | "header", unknown>>;
  const hasPointer = ref.pointer !== undefined;
  const hasHeader = ref.header !== undefined;
  if (hasPointer === hasHeader) {
    issues.push(issue(loc, 'give exactly one of {"pointer": "/json/pointer"} or {"header": "Header-Name"}'));
    return;
  }
  if (hasPointer && (typeof ref.pointer !== "string" || !isValidPointer(ref.pointer)))
    issues.push(issue([...loc, "pointer"], 'must be a JSON pointer such as "/data/id" (RFC 6901)'));
  if (hasHeader && (typeof ref.header !== "string" || !/^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(ref.header)))
    issues.push(issue([...loc, "header"], "must be an HTTP header name"));
}

/**
 * Everything wrong with a source's settings, each with where it is and how to fix it. The API
 * schema already checks types; this also guards the receiver helpers, whose options arrive
 * unchecked from code, and the rules that span fields.
 */
export function sourceProblems(
  provider: string,
  secrets: readonly unknown[],
  options: SourceOptions,
  root: Loc = ["body"],
): ValidationIssue[] {
  const issues: ValidationIssue[] = [];
  if (!isProviderName(provider)) {
    issues.push(issue([...root, "provider"], `must be one of: ${PROVIDER_NAMES.join(", ")}`));
  }
  if (!Array.isArray(secrets)) {
    issues.push(issue([...root, "secrets"], "must be a list of strings"));
  } else {
    if (secrets.length > LIMITS.secrets[1])
      issues.push(issue([...root, "secrets"], `at most ${LIMITS.secrets[1]} secrets`));
    secrets.forEach((secret, i) => {
      if (typeof secret !== "string" || secret.length < 1 || secret.length > LIMITS.secretLength[1])
        issues.push(issue([...root, "secrets", i], `must be a non-empty string of at most 1024 characters`));
    });
    if (secrets.length === 0 && provider !== "none") {
      issues.push(
        issue(
          [...root, "secrets"],
          `provider ${provider} verifies requests, so give at least one secret (use provider "none" to accept unsigned requests)`,
        ),
      );
    }
  }
  const o: Loc = [...root, "options"];
  if (provider === "generic-hmac") {
    const problem = genericOptionsError(options.generic);
    if (problem) issues.push(issue([...o, "generic"], problem));
  }
  for (const name of ["eventIdPointer"] as const) {
    const value = options[name];
    if (value !== undefined && (typeof value !== "string" || !isValidPointer(value)))
      issues.push(issue([...o, name], 'must be a JSON pointer such as "/id" (RFC 6901)'));
  }
  checkFieldRef(issues, [...o, "eventType"], options.eventType);
  checkFieldRef(issues, [...o, "orderingKey"], options.orderingKey);
  checkFieldRef(issues, [...o, "eventTime"], options.eventTime);
  if (
    options.staleAction !== undefined &&
    options.staleAction !== "skip" &&
    options.staleAction !== "deliver"
  )
    issues.push(issue([...o, "staleAction"], 'must be "skip" or "deliver"'));
  checkInteger(issues, [...o, "toleranceSec"], options.toleranceSec, LIMITS.toleranceSec);
  checkInteger(issues, [...o, "concurrency"], options.concurrency, LIMITS.concurrency);
  checkInteger(issues, [...o, "ratePerSecond"], options.ratePerSecond, LIMITS.ratePerSecond);
  checkInteger(issues, [...o, "maxAttempts"], options.maxAttempts, LIMITS.maxAttempts);
  checkInteger(issues, [...o, "retryBaseMs"], options.retryBaseMs, LIMITS.retryBaseMs);
  checkInteger(issues, [...o, "retryMaxMs"], options.retryMaxMs, LIMITS.retryMaxMs);
  checkInteger(issues, [...o, "handlerTimeoutMs"], options.handlerTimeoutMs, LIMITS.handlerTimeoutMs);
  if (options.publicUrl !== undefined) {
    let ok = false;
    try {
      ok = /^https?:$/.test(new URL(options.publicUrl).protocol);
    } catch {
      ok = false;
    }
    if (!ok) issues.push(issue([...o, "publicUrl"], "must be an absolute http(s) URL"));
  }
  if (options.forward !== undefined) {
    const forward = options.forward as Partial<Record<"appId" | "eventType", unknown>>;
    if (typeof forward.appId !== "string" || forward.appId === "")
      issues.push(issue([...o, "forward", "appId"], "must name a Pigeon application (id or uid)"));
    if (
      forward.eventType !== undefined &&
      (typeof forward.eventType !== "string" || forward.eventType === "")
    )
      issues.push(issue([...o, "forward", "eventType"], "must be a non-empty event type name"));
  }
  return issues;
}
