import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import type { Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Svix } from "svix";
import { createApiServer } from "../../src/api/server.js";
import { loadConfig, type PigeonConfig } from "../../src/core/config.js";
import { PigeonEngine } from "../../src/engine.js";
import { type BackendName, POSTGRES_TEST_URL, postgresAdmin } from "./backends.js";

export const TOKEN = "test-token";

/** Short retries and loopback allowed: the settings tests run with unless they say otherwise. */
export const TEST_ENV: Record<string, string> = {
  PIGEON_AUTH_TOKEN: TOKEN,
  PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8,::1/128",
  PIGEON_RETRY_SCHEDULE: "100ms,200ms,300ms",
  PIGEON_RETRY_JITTER: "0",
  PIGEON_REQUEST_TIMEOUT: "2s",
  PIGEON_POLL_INTERVAL: "50ms",
  PIGEON_HANDSHAKE: "off",
};

export interface TestPigeon {
  engine: PigeonEngine;
  server: Server;
  baseUrl: string;
  dir: string;
  svix: Svix;
  request(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Response>;
  close(): Promise<void>;
}

/** An in-process Pigeon on a fresh SQLite file and a loopback port. */
export async function startPigeon(
  env: Record<string, string> = {},
  overrides: Partial<PigeonConfig> = {},
): Promise<TestPigeon> {
  const dir = mkdtempSync(join(tmpdir(), "pigeon-test-"));
  const config = loadConfig(
    { ...TEST_ENV, PIGEON_DATA_DIR: dir, ...env },
    { port: 0, host: "127.0.0.1", ...overrides },
  );
  const engine = await PigeonEngine.create(config);
  const server = createApiServer(engine, { authToken: config.authToken ?? TOKEN });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  engine.start();
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    engine,
    server,
    baseUrl,
    dir,
    svix: new Svix(TOKEN, { serverUrl: baseUrl }),
    request(method, path, body, headers = {}) {
      const init: RequestInit = {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json", ...headers },
      };
      if (body !== undefined) init.body = typeof body === "string" ? body : JSON.stringify(body);
      return fetch(`${baseUrl}${path}`, init);
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await engine.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * A Pigeon on `backend`: the default embedded SQLite, or a private schema of the PostgreSQL test
 * database (dropped by `cleanup`).
 */
export async function startPigeonOn(
  backend: BackendName,
): Promise<{ pigeon: TestPigeon; cleanup: () => Promise<void> }> {
  if (backend === "sqlite") {
    const pigeon = await startPigeon();
    return { pigeon, cleanup: () => pigeon.close() };
  }
  const schema = `pigeon_test_${randomBytes(6).toString("hex")}`;
  const url = new URL(POSTGRES_TEST_URL);
  url.searchParams.set("schema", schema);
  const pigeon = await startPigeon({ PIGEON_DATABASE_URL: url.toString() });
  return {
    pigeon,
    cleanup: async () => {
      await pigeon.close();
      await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
  };
}
