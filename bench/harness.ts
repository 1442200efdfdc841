import { type ChildProcess, fork } from "node:child_process";
import { resolve } from "node:path";

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
    const port = await new Promise<number>((ok) => child.once("message", (m: { port: number }) => ok(m.port)));
    return new SinkProcess(child, port);
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
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
