import { type ChildProcess, fork } from "node:child_process";
import { resolve } from "node:path";
import { Agent } from "undici";

export interface SinkStats {
  total: number;
  firstAt: number;
  lastAt: number;
  times: number[];
  byPath: Record<string, number>;
  seqArrivals: [number, number][];
}

/** The sink child process, reachable at `url(path)`. */
export class SinkProcess {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(): Promise<SinkProcess> {
    const child = fork(resolve(import.meta.dirname, "sink-process.ts"), [], {
      execArgv: ["--import", "tsx"],
      stdio: ["ignore", "inherit", "inherit", "ipc"],
    });
    const port = await new Promise<number>((ok) =>
      child.once("message", (m: { port: number }) => ok(m.port)),
    );
    return new SinkProcess(child, port);
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** The sink process's pid (for CPU profiles). */
  get pid(): number {
    return this.child.pid ?? -1;
  }

  private ask<T>(what: string): Promise<T> {
    return new Promise((ok) => {
      this.child.once("message", (m: T) => ok(m));
      this.child.send(what);
    });
  }

  stats(): Promise<SinkStats> {
    return this.ask<SinkStats>("stats");
  }

  async reset(): Promise<void> {
    await this.ask("reset");
  }

  stop(): void {
    this.child.disconnect();
    this.child.kill();
  }
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const index = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, index)]!;
}

/**
 * The value given after `--name` on the command line, or undefined without the flag; a flag with
 * nothing after it (or another flag) is refused, naming it.
 */
export function flagValue(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return undefined;
  const value = process.argv[index + 1];
  if (!value || value.startsWith("--")) throw new Error(`--${name} needs a value`);
  return value;
}

/** The run with the median value of `key` (of an even count, the upper of the middle two). */
export function medianBy<T>(runs: readonly T[], key: (run: T) => number): T {
  return [...runs].sort((a, b) => key(a) - key(b))[Math.floor(runs.length / 2)]!;
}

/** The PostgreSQL the benchmarks run against (each in a schema of its own, dropped after). */
export const BENCH_POSTGRES_URL =
  process.env.PIGEON_BENCH_POSTGRES_URL ??
  process.env.PIGEON_TEST_POSTGRES_URL ??
  "postgres://postgres@127.0.0.1:5432/test";

export const round = (n: number, digits = 1): number => Math.round(n * 10 ** digits) / 10 ** digits;

export function printTable(title: string, rows: [string, string | number][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${title}`);
  console.log(`${"-".repeat(width + 20)}`);
  for (const [k, v] of rows) console.log(`${k.padEnd(width)}  ${v}`);
}

/**
 * Requests per second between the 10th and 90th percentile arrivals: the steady state, without
 * the process start-up before the first arrival or the stragglers after the last full batch.
 */
export function steadyRate(times: number[]): number {
  const sorted = [...times].sort((a, b) => a - b);
  const from = Math.floor(sorted.length * 0.1);
  const to = Math.floor(sorted.length * 0.9);
  const seconds = (sorted[to]! - sorted[from]!) / 1000;
  return (to - from) / seconds;
}

/** The payload every delivery benchmark sends (Pigeon and baselines alike). */
export const BENCH_PAYLOAD = {
  type: "employee.created",
  data: { id: 0, name: "Ann Lee", email: "ann@example.test", department: "R&D" },
};

/**
 * The raw ceiling: an undici POST loop with `concurrency` connections (64 by default, like
 * Pigeon's sender) to the sink, no queue and no database. Returns requests per second.
 */
export async function rawCeiling(
  sink: SinkProcess,
  options: { requests?: number; concurrency?: number } = {},
): Promise<number> {
  const requests = options.requests ?? 20_000;
  const concurrency = options.concurrency ?? 64;
  const agent = new Agent({ connections: concurrency, pipelining: 1, keepAliveTimeout: 30_000 });
  const origin = sink.url("");
  const body = JSON.stringify(BENCH_PAYLOAD);
  let next = 0;
  const worker = async () => {
    while (next < requests) {
      next++;
      const res = await agent.request({
        origin,
        path: "/raw",
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await res.body.text();
    }
  };
  await sink.reset();
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const seconds = (performance.now() - started) / 1000;
  await agent.close();
  return requests / seconds;
}
