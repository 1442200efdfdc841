import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { SqliteDatabase } from "../../store/sqlite/database.js";

/**
 * WAL checkpoints on a worker thread instead of inside commits.
 *
 * Why: SQLite's automatic checkpoint runs in the connection that commits past 1000 WAL pages,
 * synchronously: it copies the pages into the database file and fsyncs both files while the
 * event loop waits. Under intake load that is several milliseconds, many times a second, and it
 * was the largest part of the inbox's ack latency tail and a third of its throughput. A worker
 * with its own connection runs PASSIVE checkpoints (they never block writers) every
 * `intervalMs`, and the shared connection's automatic checkpoint is switched off while it runs.
 * Durability is unchanged: a checkpoint syncs the WAL before copying, whoever runs it.
 *
 * If the worker dies, automatic checkpoints are switched back on, so the WAL can never grow
 * without bound.
 */
export class BackgroundCheckpointer {
  private worker: Worker | undefined;
  private previous: number | undefined;

  constructor(
    private readonly db: SqliteDatabase,
    private readonly intervalMs = 100,
  ) {}

  start(): void {
    if (this.worker || this.db.memory) return;
    this.previous = Number(this.db.pragma("wal_autocheckpoint", { simple: true }));
    const driver = createRequire(import.meta.url).resolve("better-sqlite3");
    // Plain CommonJS in an eval worker: it runs the same whether Pigeon runs from dist/ or from
    // TypeScript sources under a test runner.
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { driver, file: this.db.name, intervalMs: this.intervalMs },
    });
    worker.unref();
    worker.on("error", (error) => {
      console.error("pigeon: background checkpoints stopped; SQLite checkpoints in commits again", error);
      this.restore();
    });
    worker.on("exit", () => {
      if (this.worker === worker) this.restore();
    });
    this.worker = worker;
    this.db.pragma("wal_autocheckpoint = 0");
  }

  async stop(): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.restore();
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    // Unref'd while it runs, so it never keeps a process alive; waiting for its exit must, or with
    // nothing else pending the process ended inside this await and whatever closes after it (the
    // inbox's connection, the engine's store) never ran.
    worker.ref();
    worker.postMessage("stop");
    await exited;
  }

  private restore(): void {
    this.worker = undefined;
    if (this.previous !== undefined && this.db.open) this.db.pragma(`wal_autocheckpoint = ${this.previous}`);
    this.previous = undefined;
  }
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.driver);
const db = new Database(workerData.file);
db.pragma("busy_timeout = 1000");
const checkpoint = db.prepare("PRAGMA wal_checkpoint(PASSIVE)");
let timer;
const tick = () => {
  try { checkpoint.get(); } catch { /* busy or closing: try again next tick */ }
  timer = setTimeout(tick, workerData.intervalMs);
};
parentPort.on("message", (message) => {
  if (message !== "stop") return;
  clearTimeout(timer);
  db.close();
  process.exit(0);
});
tick();
`;
