import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { POSTGRES_TEST_URL, postgresAdmin } from "../helpers/backends.js";
import { TOKEN } from "../helpers/pigeon.js";

export interface Arrival {
  /** When the request line and headers were in (before the body), in ms. */
  at: number;
  n: number;
  webhookId: string;
}

/**
 * `count` loopback node:http endpoints that record, per request, its arrival time (taken when the
 * request arrives, not when its body is read), the message number in the payload and the
 * webhook-id, and answer 200 at once; in a child process of their own (see arrival-sink-process.ts
 * for why). The test asks for counts while the run goes on and for the arrivals at the end.
 */
export class ArrivalSinks {
  private waiting: ((msg: Record<string, unknown>) => void)[] = [];

  private constructor(
    private readonly child: ChildProcess,
    readonly urls: string[],
  ) {
    child.on("message", (msg: Record<string, unknown>) => this.waiting.shift()?.(msg));
  }

  static async start(count: number): Promise<ArrivalSinks> {
    const child = fork(resolve(import.meta.dirname, "arrival-sink-process.ts"), [String(count)], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const ports = await new Promise<number[]>((done, fail) => {
      child.once("message", (msg: { ports: number[] }) => done(msg.ports));
      child.once("exit", (code) => fail(new Error(`the arrival sinks exited with ${code}`)));
    });
    return new ArrivalSinks(
      child,
      ports.map((port) => `http://127.0.0.1:${port}/hook`),
    );
  }

  private ask(what: "counts" | "arrivals"): Promise<Record<string, unknown>> {
    return new Promise((done) => {
      this.waiting.push(done);
      this.child.send(what);
    });
  }

  /** Requests received, and distinct message numbers received, per endpoint. */
  async counts(): Promise<{ total: number; unique: number }[]> {
    return (await this.ask("counts")).counts as { total: number; unique: number }[];
  }

  /** Every arrival, per endpoint. */
  async arrivals(): Promise<Arrival[][]> {
    return (await this.ask("arrivals")).arrivals as Arrival[][];
  }

  async close(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise<void>((done) => this.child.once("exit", () => done()));
    this.child.disconnect();
    await exited;
  }
}

/**
 * The most arrivals any half-open one-second window [t, t + 1000 ms) holds. The busiest window
 * always starts at an arrival, so checking the windows that start at each arrival is enough.
 */
export function maxPerSecond(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  let max = 0;
  let j = 0;
  for (let i = 0; i < sorted.length; i++) {
    while (j < sorted.length && sorted[j]! < sorted[i]! + 1000) j++;
    max = Math.max(max, j - i);
  }
  return max;
}

/** The shortest time from first to last of any `k` consecutive arrivals (ms). */
export function shortestSpan(times: number[], k: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let min = Number.POSITIVE_INFINITY;
  for (let i = 0; i + k - 1 < sorted.length; i++) min = Math.min(min, sorted[i + k - 1]! - sorted[i]!);
  return min;
}

/**
 * A fresh schema of the PostgreSQL test database for one test (Pigeon creates it on start), with
 * its own application_name so a test can find (and terminate) exactly its own connections, and
 * a temp data folder for the processes.
 */
export class ScaleDatabase {
  readonly schema = `scale_${randomBytes(5).toString("hex")}`;
  readonly applicationName = `pigeon-${this.schema.replace("_", "-")}`;
  readonly dataDir = mkdtempSync(join(tmpdir(), "pigeon-scale-"));

  /**
   * The `--database` URL every process of the test gets. Pools of 4 (default 10): the test server
   * is shared with the other suites (max_connections 100), and four processes with default pools
   * plus their LISTEN connections would take 44 of them on their own.
   */
  url(): string {
    const url = new URL(POSTGRES_TEST_URL);
    url.searchParams.set("schema", this.schema);
    url.searchParams.set("application_name", this.applicationName);
    url.searchParams.set("pool_size", "4");
    return url.toString();
  }

  /** Environment shared by the test's Pigeon processes (as in the SQLite crash test). */
  env(extra: Record<string, string> = {}): Record<string, string> {
    return {
      PIGEON_DATA_DIR: this.dataDir,
      PIGEON_AUTH_TOKEN: TOKEN,
      PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8",
      PIGEON_HANDSHAKE: "off",
      PIGEON_RETRY_SCHEDULE: "200ms,500ms,1s,2s,2s,2s,2s",
      PIGEON_RETRY_JITTER: "0",
      PIGEON_LEASE: "3s",
      PIGEON_POLL_INTERVAL: "100ms",
      ...extra,
    };
  }

  async query<T extends Record<string, unknown>>(sql: string, values: unknown[] = []): Promise<T[]> {
    return (await postgresAdmin().query<T>(sql, values)).rows;
  }

  /** Delivery rows per status, straight from the table. */
  async deliveryStatuses(): Promise<Record<string, number>> {
    const rows = await this.query<{ status: string; n: number }>(
      `SELECT status, count(*)::int AS n FROM "${this.schema}".deliveries GROUP BY status`,
    );
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  }

  async drop(): Promise<void> {
    rmSync(this.dataDir, { recursive: true, force: true });
    await postgresAdmin().query(`DROP SCHEMA IF EXISTS "${this.schema}" CASCADE`);
  }
}

export interface ApiClient {
  call(method: string, path: string, body?: unknown): Promise<Response>;
}

export function apiClient(baseUrl: string): ApiClient {
  return {
    call: (method, path, body) =>
      fetch(`${baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      }),
  };
}

/**
 * Creates an application and its endpoints through the HTTP API (bodies as the API takes them) and
 * returns the application's id; any answer but 201 fails the test with what the API said.
 */
export async function createAppWithEndpoints(
  client: ApiClient,
  app: Record<string, unknown>,
  endpoints: Record<string, unknown>[],
): Promise<string> {
  const created = async (path: string, body: Record<string, unknown>) => {
    const res = await client.call("POST", path, body);
    if (res.status !== 201) throw new Error(`POST ${path} answered ${res.status}: ${await res.text()}`);
    return (await res.json()) as { id: string };
  };
  const { id } = await created("/api/v1/app", app);
  for (const endpoint of endpoints) await created(`/api/v1/app/${id}/endpoint`, endpoint);
  return id;
}

export interface ProduceResult {
  accepted: number;
  /** Answers that were neither 202 nor 409 (and network errors), each followed by a retry. */
  retries: number;
}

/**
 * Publishes messages 0..count-1 through the HTTP API with `parallel` concurrent producers. Each
 * message carries eventId `m-{n}` and is retried with the same eventId until Pigeon answers 202
 * (new) or 409 (accepted earlier, its answer lost), so a retry never makes a second message.
 * `pace`, if given, is awaited before each message (to spread production over time).
 */
export async function produce(
  client: ApiClient,
  appId: string,
  count: number,
  body: (n: number) => Record<string, unknown>,
  options: { parallel?: number; pace?: (n: number) => Promise<void> } = {},
): Promise<ProduceResult> {
  const result: ProduceResult = { accepted: 0, retries: 0 };
  let next = 0;
  const producer = async () => {
    while (next < count) {
      const n = next++;
      await options.pace?.(n);
      for (;;) {
        let status = 0;
        let text = "";
        try {
          const res = await client.call("POST", `/api/v1/app/${appId}/msg`, {
            eventId: `m-${n}`,
            ...body(n),
          });
          status = res.status;
          text = await res.text();
        } catch {
          // connection refused or reset: retry
        }
        if (status === 202 || status === 409) {
          result.accepted++;
          break;
        }
        if (status >= 400 && status < 500) throw new Error(`message ${n}: unexpected ${status}: ${text}`);
        result.retries++;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  };
  await Promise.all(Array.from({ length: options.parallel ?? 16 }, producer));
  return result;
}

/** Duplicates (arrivals beyond the first per message) and whether every message kept one webhook-id. */
export function duplicatesOf(sink: { arrivals: Arrival[] }): { duplicates: number; stableIds: boolean } {
  const ids = new Map<number, Set<string>>();
  for (const a of sink.arrivals) ids.set(a.n, (ids.get(a.n) ?? new Set()).add(a.webhookId));
  return {
    duplicates: sink.arrivals.length - ids.size,
    stableIds: [...ids.values()].every((s) => s.size === 1),
  };
}
