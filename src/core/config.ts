import { join } from "node:path";
import { parseDuration } from "./duration.js";

/**
 * Every setting Pigeon reads, resolved once from the environment into a frozen object.
 * A bad value fails start-up with a message that names the variable and what it accepts.
 */
export interface PigeonConfig {
  host: string;
  port: number;
  dataDir: string;
  databaseUrl: string;
  authToken: string | undefined;
  allowedNetworks: string;
  retryScheduleMs: readonly number[];
  retryJitter: number;
  retryAfterMaxMs: number;
  requestTimeoutMs: number;
  maxPayloadBytes: number;
  maxResponseBytes: number;
  globalConcurrency: number;
  endpointConcurrency: number;
  disableAfterMs: number;
  rotationGraceMs: number;
  leaseMs: number;
  pollIntervalMs: number;
  handshakeMode: HandshakeMode;
  /** api: HTTP API only; worker: delivery only; all: both (the default, one process). */
  role: PigeonRole;
}

export type PigeonRole = "api" | "worker" | "all";

export type HandshakeMode = "required" | "optional" | "off";

export const DEFAULT_RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h";

export class ConfigError extends Error {
  constructor(variable: string, problem: string) {
    super(`${variable}: ${problem}`);
    this.name = "ConfigError";
  }
}

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = read(env, name);
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `expected an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function duration(env: Env, name: string, fallback: string, minMs = 0): number {
  const raw = read(env, name) ?? fallback;
  const value = parseDuration(raw);
  if (value === undefined || value < minMs) {
    throw new ConfigError(name, `expected a duration such as 500ms, 5s, 30m, 2h or 5d, got "${raw}"`);
  }
  return value;
}

export function parseRetrySchedule(raw: string, variable = "PIGEON_RETRY_SCHEDULE"): number[] {
  const parts = raw.split(",").map((p) => p.trim());
  const schedule = parts.map((p) => parseDuration(p));
  if (parts.length === 0 || schedule.some((ms) => ms === undefined)) {
    throw new ConfigError(
      variable,
      `expected a comma-separated list of durations such as "5s,5m,30m", got "${raw}"`,
    );
  }
  return schedule as number[];
}

export function loadConfig(
  env: Env = process.env,
  overrides: Partial<PigeonConfig> = {},
): Readonly<PigeonConfig> {
  const dataDir = read(env, "PIGEON_DATA_DIR") ?? join(process.cwd(), ".pigeon");
  const handshake = read(env, "PIGEON_HANDSHAKE") ?? "required";
  if (handshake !== "required" && handshake !== "optional" && handshake !== "off") {
    throw new ConfigError("PIGEON_HANDSHAKE", `expected required, optional or off, got "${handshake}"`);
  }
  const role = read(env, "PIGEON_ROLE") ?? "all";
  if (role !== "api" && role !== "worker" && role !== "all") {
    throw new ConfigError("PIGEON_ROLE", `expected api, worker or all, got "${role}"`);
  }
  const jitter = Number(read(env, "PIGEON_RETRY_JITTER") ?? "0.2");
  if (!Number.isFinite(jitter) || jitter < 0 || jitter >= 1) {
    throw new ConfigError("PIGEON_RETRY_JITTER", "expected a fraction from 0 to below 1, such as 0.2");
  }
  const config: PigeonConfig = {
    host: read(env, "PIGEON_HOST") ?? "0.0.0.0",
    port: integer(env, "PIGEON_PORT", 8080, 0, 65535),
    dataDir,
    databaseUrl: read(env, "PIGEON_DATABASE_URL") ?? join(dataDir, "pigeon.db"),
    authToken: read(env, "PIGEON_AUTH_TOKEN"),
    allowedNetworks: read(env, "PIGEON_ALLOWED_NETWORKS") ?? "",
    retryScheduleMs: parseRetrySchedule(read(env, "PIGEON_RETRY_SCHEDULE") ?? DEFAULT_RETRY_SCHEDULE),
    retryJitter: jitter,
    retryAfterMaxMs: duration(env, "PIGEON_RETRY_AFTER_MAX", "1h"),
    requestTimeoutMs: duration(env, "PIGEON_REQUEST_TIMEOUT", "15s", 100),
    maxPayloadBytes: integer(env, "PIGEON_MAX_PAYLOAD_BYTES", 1024 * 1024, 1024, 64 * 1024 * 1024),
    maxResponseBytes: integer(env, "PIGEON_MAX_RESPONSE_BYTES", 64 * 1024, 0, 16 * 1024 * 1024),
    globalConcurrency: integer(env, "PIGEON_CONCURRENCY", 512, 1, 100_000),
    endpointConcurrency: integer(env, "PIGEON_ENDPOINT_CONCURRENCY", 32, 1, 10_000),
    disableAfterMs: duration(env, "PIGEON_DISABLE_AFTER", "5d"),
    rotationGraceMs: duration(env, "PIGEON_ROTATION_GRACE", "24h"),
    leaseMs: duration(env, "PIGEON_LEASE", "2m", 1000),
    pollIntervalMs: duration(env, "PIGEON_POLL_INTERVAL", "1s", 10),
    handshakeMode: handshake,
    role,
    ...overrides,
  };
  return Object.freeze(config);
}
