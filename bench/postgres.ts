/**
 * Scale-out benchmark on PostgreSQL. Prints JSON and a table; never passes or fails.
 *
 * All figures come from one run against one database (a fresh schema per measurement, dropped
 * after), to the same loopback sink process:
 *
 * - raw ceiling: the undici POST loop of bench/harness.ts (no queue, no database);
 * - Pigeon: 20,000 deliveries (2,500 messages × 8 endpoints) preloaded in-process through the
 *   real publisher, then drained by 1, 2 and 4 `pigeon serve --role worker` processes. The
 *   backlog is written as held deliveries (endpoints awaiting their handshake) and released in
 *   one transaction with one NOTIFY, only once every worker is up and has drained a warm-up
 *   backlog of 4,000 deliveries; the clock starts as the release commits, so neither process
 *   start-up nor JIT warm-up is measured; then once more with the best process count
 *   and a 4× wider per-endpoint cap (PIGEON_ENDPOINT_CONCURRENCY=128), which shows what the size
 *   of claims costs (a worker holds up to three caps per endpoint while no other worker holds a
 *   lease on it, else only its share of the cap);
 * - baseline: pg-boss 10 (durable jobs on the same database), the same 20,000 deliveries as jobs
 *   each doing a signed undici POST to the same sink (after a warm-up queue of 4,000 jobs drained
 *   by the same processes; the clock starts as they are told to work), with the same number of
 *   connections in total as Pigeon may have in flight (8 endpoints × 32): once with that many jobs
 *   in hand (4 work() loops sharing them) in as many processes as Pigeon's best run, and then with
 *   big fetches (4 × 500 jobs in hand per process) in 1, 2 and 4 processes, pg-boss's best shot,
 *   since a loop that finds work still waits out the polling interval (0.5 s, the minimum) before
 *   fetching again, each run right after Pigeon's with as many processes (the machine's speed
 *   drifts within minutes). The best pg-boss run is the baseline.
 *
 * - slow endpoints: the same drain of 20,000 deliveries to 100 endpoints that answer 100 ms after a
 *   request arrives, by Pigeon's 1, 2 and 4 workers and by pg-boss (4 × 500 jobs in hand) in as many
 *   processes, each process with 512 requests on the wire at most (Pigeon's default
 *   PIGEON_CONCURRENCY). Here one worker cannot keep the machine busy, so this shows what each
 *   added worker brings until the machine is the limit (with the sink answering at once, one
 *   worker already keeps two cores ~80 % busy).
 *
 * Rounds (`--rounds`, default 3): the comparisons where the endpoints answer at once and to slow
 * endpoints each run that many times, Pigeon and pg-boss alternating at each process count within
 * a round; the table shows the median round per process count and the median of the rounds' best ÷
 * best ratios, with every round's figure beside it. One round of the same code read 0.96 in one hour
 * and 1.22 in another. The wider cap and pg-boss's small batches run once.
 *
 * Drain rate: deliveries / (last arrival − release). Steady rate: between the 10th and 90th
 * percentile arrivals, as in bench/delivery.ts. A CPU profile (from /proc) says where the time
 * went: PostgreSQL, the workers, the sink.
 *
 *   npm run build && node --import tsx bench/postgres.ts [--rounds 3] [--pigeon-only|--pgboss-only 1,2 [--slow-endpoints]]
 *
 * `PIGEON_BENCH_TIMELINE=1` also prints each drain's arrivals at the sink per 100 ms: a drain that
 * comes in waves (its workers idle between claims) shows there, where the rate alone hides it.
 */
import { type ChildProcess, fork } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import pg from "pg";
import PgBoss from "pg-boss";
import { createApplication } from "../src/api/routes/applications.js";
import { createEndpoint } from "../src/api/routes/endpoints.js";
import { loadConfig } from "../src/core/config.js";
import { PigeonEngine } from "../src/engine.js";
import { channelFor } from "../src/store/postgres/connection.js";
import { freePort, PigeonProcess } from "../test/helpers/child.js";
import { CORES, type CpuProfile, startCpuProfile } from "./cpu.js";
import {
  BENCH_PAYLOAD,
  BENCH_POSTGRES_URL,
  flagValue,
  medianBy,
  printTable,
  rawCeiling,
  round,
  SinkProcess,
  type SinkStats,
  steadyRate,
} from "./harness.js";

const TOKEN = "bench-token";
const ENDPOINTS = 8;
const MESSAGES = 2_500;
const DELIVERIES = MESSAGES * ENDPOINTS;
const WORKER_COUNTS = [1, 2, 4];
/** Pigeon's default per-endpoint cap (PIGEON_ENDPOINT_CONCURRENCY), shared by all workers. */
const ENDPOINT_CONCURRENCY = 32;
const IN_FLIGHT = ENDPOINTS * ENDPOINT_CONCURRENCY;
/** A wider per-endpoint cap, to show what claim size costs (not the default). */
const WIDE_ENDPOINT_CONCURRENCY = 128;
/** Pigeon's default requests in flight per process (PIGEON_CONCURRENCY). */
const PIGEON_PROCESS_CONCURRENCY = 512;
/** pg-boss work() loops per process. */
const PGBOSS_LOOPS = 4;
/** Jobs per fetch in pg-boss's big-batch run. */
const PGBOSS_BIG_BATCH = 500;
const DRAIN_DEADLINE_MS = 60_000;
/**
 * Deliveries (and pg-boss jobs) drained by the same processes before the measured backlog, so
 * both are measured warm, as long-running workers are: started cold, Pigeon's workers took the
 * first 1.5–2 s of a 4–5 s drain to reach their steady rate (JIT), which measured start-up, not
 * throughput. The warm-up is as large as the measured backlog (2,500 messages × 8 endpoints): after
 * 4,000 deliveries V8 was still compiling during the measured drain (--trace-opt: 0.3–0.6 s of
 * TurboFan work per Pigeon worker, a tenth to a fifth of its CPU there; perf: 3 % of a worker's
 * CPU after this warm-up, as for pg-boss's).
 */
const WARMUP_MESSAGES = MESSAGES;

/** What a drain sends: how many endpoints, messages to each, and how long the sink takes to answer. */
interface Workload {
  endpoints: number;
  messages: number;
  warmupMessages: number;
  /** The sink answers each request this many milliseconds after it arrives (0: at once). */
  answerAfterMs: number;
  endpointConcurrency: number;
}

/** The comparison with pg-boss: 8 endpoints on a sink that answers at once. */
const FAST_SINK: Workload = {
  endpoints: ENDPOINTS,
  messages: MESSAGES,
  warmupMessages: WARMUP_MESSAGES,
  answerAfterMs: 0,
  endpointConcurrency: ENDPOINT_CONCURRENCY,
};

/**
 * Endpoints that take their time, as real ones do: 100 of them answering after 100 ms. Each worker
 * then keeps at most PIGEON_CONCURRENCY (its default, 512) requests in flight, so one worker cannot keep the
 * machine busy, and what more workers add shows until the machine is the limit. The endpoints'
 * caps (100 × 32) leave room for every worker's 512.
 */
const SLOW_SINK: Workload = {
  endpoints: 100,
  messages: 200,
  // As large as the measured backlog, as WARMUP_MESSAGES is, so both sides are measured JIT-warm.
  warmupMessages: 200,
  answerAfterMs: 100,
  endpointConcurrency: ENDPOINT_CONCURRENCY,
};

function deliveriesOf(w: Workload): number {
  return w.endpoints * w.messages;
}

function warmupDeliveriesOf(w: Workload): number {
  return w.endpoints * w.warmupMessages;
}

/** The sink path of endpoint `i`: the sink reads its answer delay from the path. */
function sinkPath(w: Workload, i: number): string {
  return w.answerAfterMs > 0 ? `/delay/${w.answerAfterMs}/e${i}` : `/e${i}`;
}

interface DrainResult {
  processes: number;
  delivered: number;
  drainPerSec: number;
  steadyPerSec: number;
  seconds: number;
  cpu: CpuProfile;
  /**
   * CPU milliseconds per delivery spent by the workers and PostgreSQL (the sink excluded): less
   * sensitive than rates to whatever else the machine is running.
   */
  cpuMsPerDelivery: number;
}

function urlWith(params: Record<string, string>): string {
  const url = new URL(BENCH_POSTGRES_URL);
  for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
  return url.toString();
}

/** Waits until the sink has `expected` requests (or the deadline), then reads its stats. */
async function waitForSink(sink: SinkProcess, expected: number, deadlineMs: number): Promise<SinkStats> {
  const deadline = Date.now() + deadlineMs;
  let stats = await sink.stats();
  while (stats.total < expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    stats = await sink.stats();
  }
  return stats;
}

/** Waits for the warm-up's `expected` requests and for the sink to go quiet, then empties it. */
async function finishWarmup(sink: SinkProcess, expected: number): Promise<void> {
  let stats = await waitForSink(sink, expected, DRAIN_DEADLINE_MS);
  if (stats.total < expected) throw new Error(`warm-up: ${stats.total} of ${expected} arrived`);
  for (;;) {
    await new Promise((r) => setTimeout(r, 300));
    const now = await sink.stats();
    if (now.total === stats.total) break;
    stats = now;
  }
  await sink.reset();
}

/** pids of this run's own PostgreSQL backends, to tell them from the rest of the server. */
async function backendPids(admin: pg.Pool, applicationName: string): Promise<Set<number>> {
  const { rows } = await admin.query<{ pid: number }>(
    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
    [applicationName],
  );
  return new Set(rows.map((r) => r.pid));
}

const PG_BACKENDS = "postgres backends";
const PG_OTHER = "postgres other (wal writer, …)";
/**
 * The bench's own connection (ADMIN_APPLICATION_NAME): shown, not counted in CPU per delivery.
 * Pigeon's clock starts with the statement that makes its parked backlog due, 20,000 rows
 * rewritten on this connection (0.15–0.2 s of PostgreSQL CPU here); counted as "postgres other",
 * it was charged to Pigeon's deliveries, while pg-boss's jobs are simply there when its clock starts.
 */
const PG_BENCH_ADMIN = "bench's own statements (not counted)";
const ADMIN_APPLICATION_NAME = "pigeon-bench-admin";

function classifier(backends: Set<number>, workerPattern: RegExp, sinkPid: number, admin: Set<number>) {
  return (pid: number, cmdline: string): string | undefined => {
    if (backends.has(pid)) return PG_BACKENDS;
    if (admin.has(pid)) return PG_BENCH_ADMIN;
    if (cmdline.startsWith("postgres")) return PG_OTHER;
    if (workerPattern.test(cmdline)) return "workers";
    if (pid === sinkPid) return "sink";
    return undefined;
  };
}

/** A drain's figures as the JSON output reports them. */
function drainFigures(r: DrainResult) {
  return {
    drainPerSec: r.drainPerSec,
    steadyPerSec: r.steadyPerSec,
    delivered: r.delivered,
    seconds: r.seconds,
    cpuSeconds: r.cpu.seconds,
    machineBusy: r.cpu.machineBusy,
    cpuMsPerDelivery: r.cpuMsPerDelivery,
  };
}

/** A drain's rate with its CPU per delivery and how busy the machine was, for a table cell. */
function rateWithCpu(r: DrainResult): string {
  return `${r.drainPerSec} (${r.cpuMsPerDelivery} ms CPU each, machine ${Math.round(r.cpu.machineBusy * 100)}% busy)`;
}

function drainResult(processes: number, stats: SinkStats, startedAt: number, cpu: CpuProfile): DrainResult {
  const seconds = (stats.lastAt - startedAt) / 1000;
  if (process.env.PIGEON_BENCH_TIMELINE) {
    const buckets: number[] = [];
    for (const t of stats.times) {
      const b = Math.floor((t - startedAt) / 100);
      buckets[b] = (buckets[b] ?? 0) + 1;
    }
    console.log(`timeline x${processes} (per 100 ms):`, Array.from(buckets, (n) => n ?? 0).join(" "));
  }
  return {
    processes,
    delivered: stats.total,
    drainPerSec: round(stats.total / seconds),
    steadyPerSec: round(steadyRate(stats.times)),
    seconds: round(seconds, 2),
    cpu,
    cpuMsPerDelivery: round(
      (((cpu.seconds.workers ?? 0) + (cpu.seconds[PG_BACKENDS] ?? 0) + (cpu.seconds[PG_OTHER] ?? 0)) * 1000) /
        Math.max(1, stats.total),
      3,
    ),
  };
}

/**
 * Makes held or parked deliveries due at once (those of `messageIds`, or all), wakes the workers,
 * and returns the time just before the COMMIT that makes them visible.
 */
async function releaseBacklog(
  admin: pg.Pool,
  schema: string,
  options: { messageIds?: string[]; analyze?: boolean } = {},
): Promise<number> {
  const { messageIds, analyze = false } = options;
  const client = await admin.connect();
  try {
    const at = Date.now();
    await client.query("BEGIN");
    await client.query(
      `UPDATE "${schema}".endpoints SET status = 'active', verified_at = $1, challenge = NULL,
         handshake_next_at = NULL, updated_at = $1`,
      [at],
    );
    await client.query(
      `UPDATE "${schema}".deliveries SET status = 'pending', next_attempt_at = $1, updated_at = $1
         WHERE status IN ('held', 'pending') AND ($2::text[] IS NULL OR msg_id = ANY ($2::text[]))`,
      [at, messageIds ?? null],
    );
    // Analysed inside the release, where ANALYZE samples this transaction's own new row versions, so
    // the planner sees the backlog as it is when the drain starts: due now. Analysed while parked
    // (due in an hour), it took the due rows for none and picked each endpoint's rows through the
    // time-ordered index, passing over ~100 other endpoints' rows for each one (auto_explain).
    // pg-boss's table is analysed with its jobs as they are fetched, too.
    if (analyze) await client.query(`ANALYZE "${schema}".deliveries`);
    await client.query("SELECT pg_notify($1, '')", [channelFor(schema)]);
    const committing = Date.now();
    await client.query("COMMIT");
    return committing;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  } finally {
    client.release();
  }
}

/** Pigeon: preload a held backlog, start `workers` worker processes, release it, time the drain. */
async function pigeonDrain(
  sink: SinkProcess,
  admin: pg.Pool,
  workers: number,
  workload: Workload = FAST_SINK,
): Promise<DrainResult> {
  const schema = `bench_pigeon_${randomBytes(4).toString("hex")}`;
  const applicationName = "pigeon-bench";
  const url = urlWith({ schema, application_name: applicationName });
  const dir = mkdtempSync(join(tmpdir(), "pigeon-bench-pg-"));
  const env = {
    PIGEON_DATA_DIR: dir,
    PIGEON_AUTH_TOKEN: TOKEN,
    PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8",
    PIGEON_DATABASE_URL: url,
    PIGEON_ENDPOINT_CONCURRENCY: String(workload.endpointConcurrency),
  };
  const engine = await PigeonEngine.create(loadConfig(env));
  const processes: PigeonProcess[] = [];
  try {
    // Endpoints awaiting their handshake get held deliveries: the backlog waits, unclaimable,
    // until markEndpointVerified releases it. Their handshakes are unscheduled below, so no
    // worker sends one.
    const app = await createApplication(engine, { name: "bench", handshake: "required" });
    for (let i = 0; i < workload.endpoints; i++) {
      await createEndpoint(engine, app, { url: sink.url(sinkPath(workload, i)) });
    }
    const publishAll = async (count: number): Promise<string[]> => {
      const ids: string[] = [];
      let next = 0;
      const publisher = async () => {
        while (next < count) {
          const seq = next++;
          const message = await engine.publisher.publish(app, {
            eventType: "employee.created",
            payload: { ...BENCH_PAYLOAD, seq },
          });
          ids.push(message.id);
        }
      };
      await Promise.all(Array.from({ length: 16 }, publisher));
      return ids;
    };
    const warmupMessages = await publishAll(workload.warmupMessages);
    await publishAll(workload.messages);
    await admin.query(`UPDATE "${schema}".endpoints SET handshake_next_at = NULL`);
    await admin.query(`VACUUM ANALYZE "${schema}".deliveries`);

    for (let i = 0; i < workers; i++) {
      processes.push(new PigeonProcess(await freePort(), env, ["--role", "worker", "--database", url]));
    }
    await Promise.all(processes.map((p) => p.start()));
    await sink.reset();
    await releaseBacklog(admin, schema, { messageIds: warmupMessages });
    await finishWarmup(sink, warmupDeliveriesOf(workload));
    // The backlog is parked as pending but due in an hour and the table vacuumed and analysed, so
    // the planner knows the backlog is there, as it knows pg-boss's (analysed with its jobs
    // queued). Analysed while the rows were held, the claim's partial indexes looked empty to it.
    // The release analyses it once more, with the rows due (releaseBacklog).
    await admin.query(
      `UPDATE "${schema}".deliveries SET status = 'pending', next_attempt_at = $1 WHERE status = 'held'`,
      [Date.now() + 3_600_000],
    );
    await admin.query(`VACUUM ANALYZE "${schema}".deliveries`);
    const profile = startCpuProfile();
    // The whole backlog is made due in one transaction and the clock starts at its commit: no
    // delivery can start before it, just as pg-boss's clock starts with its jobs already in the
    // table. One due time for every endpoint, so the backlog is due in message order across them,
    // as pg-boss's jobs are.
    const releasedAt = await releaseBacklog(admin, schema, { analyze: true });
    const stats = await waitForSink(sink, deliveriesOf(workload), DRAIN_DEADLINE_MS);
    const backends = await backendPids(admin, applicationName);
    const cpu = profile.stop(
      classifier(
        backends,
        /dist\/cli\/main\.js serve/,
        sink.pid,
        await backendPids(admin, ADMIN_APPLICATION_NAME),
      ),
    );
    return drainResult(workers, stats, releasedAt, cpu);
  } finally {
    await Promise.all(processes.map((p) => p.stop().catch(() => {})));
    await engine.stop();
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    rmSync(dir, { recursive: true, force: true });
  }
}

interface BossChild {
  child: ChildProcess;
  ready: Promise<void>;
}

function forkBossWorker(config: Record<string, unknown>): BossChild {
  const child = fork(resolve(import.meta.dirname, "pgboss-worker.ts"), [], {
    execArgv: ["--import", "tsx"],
    env: { ...process.env, PGBOSS_BENCH_CONFIG: JSON.stringify(config) },
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const ready = new Promise<void>((ok, fail) => {
    child.once("message", () => ok());
    child.once("exit", (code) => fail(new Error(`pg-boss worker exited with ${code}`)));
  });
  return { child, ready };
}

interface BossShape {
  processes: number;
  /** work() calls per process. */
  loops: number;
  /** Jobs per fetch. */
  batchSize: number;
  /** Sink connections per process. */
  connections: number;
}

/**
 * pg-boss with big fetches in `processes` processes: with the sink answering at once, IN_FLIGHT
 * connections split between them (as Pigeon's endpoint caps allow in total); with slow endpoints,
 * each process as many as one Pigeon worker keeps on the wire.
 */
function bigBatchShape(processes: number, workload: Workload): BossShape {
  return {
    processes,
    loops: PGBOSS_LOOPS,
    batchSize: PGBOSS_BIG_BATCH,
    connections: workload === SLOW_SINK ? PIGEON_PROCESS_CONCURRENCY : Math.ceil(IN_FLIGHT / processes),
  };
}

/** The baseline: the same deliveries as pg-boss jobs, drained by `shape.processes` worker processes. */
async function pgBossDrain(
  sink: SinkProcess,
  admin: pg.Pool,
  shape: BossShape,
  workload: Workload = FAST_SINK,
): Promise<DrainResult> {
  const schema = `bench_pgboss_${randomBytes(4).toString("hex")}`;
  const queue = "webhooks";
  const warmupQueue = "webhooks-warmup";
  const boss = new PgBoss({
    connectionString: BENCH_POSTGRES_URL,
    schema,
    application_name: "pgboss-bench-loader",
  });
  boss.on("error", (error) => console.error("pg-boss:", error.message));
  const children: BossChild[] = [];
  try {
    await boss.start();
    const insertJobs = async (name: string, count: number) => {
      await boss.createQueue(name);
      for (let from = 0; from < count; from += 1_000) {
        const jobs = [];
        for (let i = from; i < Math.min(from + 1_000, count); i++) {
          const seq = Math.floor(i / workload.endpoints);
          jobs.push({
            name,
            data: {
              url: sink.url(sinkPath(workload, i % workload.endpoints)),
              payload: { ...BENCH_PAYLOAD, seq },
            },
          });
        }
        await boss.insert(jobs);
      }
    };
    await insertJobs(warmupQueue, warmupDeliveriesOf(workload));
    await insertJobs(queue, deliveriesOf(workload));
    await boss.stop({ graceful: false, wait: true });
    await admin.query(`VACUUM ANALYZE "${schema}".job`);

    for (let i = 0; i < shape.processes; i++) {
      children.push(
        forkBossWorker({
          connectionString: BENCH_POSTGRES_URL,
          schema,
          loops: shape.loops,
          batchSize: shape.batchSize,
          connections: shape.connections,
          secret: randomBytes(24).toString("base64"),
        }),
      );
    }
    await Promise.all(children.map((c) => c.ready));
    await sink.reset();
    for (const { child } of children) child.send({ work: warmupQueue });
    await finishWarmup(sink, warmupDeliveriesOf(workload));
    for (const { child } of children) child.send({ stop: warmupQueue });
    const profile = startCpuProfile();
    const startedAt = Date.now();
    for (const { child } of children) child.send({ work: queue });
    const stats = await waitForSink(sink, deliveriesOf(workload), DRAIN_DEADLINE_MS);
    const backends = await backendPids(admin, "pgboss-bench");
    const cpu = profile.stop(
      classifier(backends, /pgboss-worker\.ts/, sink.pid, await backendPids(admin, ADMIN_APPLICATION_NAME)),
    );
    return drainResult(shape.processes, stats, startedAt, cpu);
  } finally {
    for (const { child } of children) {
      child.removeAllListeners("exit");
      child.kill("SIGKILL");
    }
    await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  }
}

async function probe(admin: pg.Pool): Promise<string | undefined> {
  try {
    await admin.query("SELECT 1");
    return undefined;
  } catch (error) {
    return `PostgreSQL at ${BENCH_POSTGRES_URL.replace(/\/\/([^:@/]+):[^@/]*@/, "//$1:***@")} is not reachable (${(error as Error).message})`;
  }
}

function cpuSummary(r: DrainResult): string {
  const parts = Object.entries(r.cpu.seconds)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}s`);
  return (
    `${r.cpuMsPerDelivery} ms/delivery (${parts.join(", ")}); ` +
    `machine ${Math.round(r.cpu.machineBusy * 100)}% busy over ${r.cpu.wallSeconds}s`
  );
}

/**
 * Runs `use` with the admin pool and the sink every drain uses, and closes both after; when
 * PostgreSQL cannot be reached, says why and returns that instead.
 */
async function withBenchServices<T>(
  use: (admin: pg.Pool, sink: SinkProcess) => Promise<T>,
): Promise<T | { skipped: string }> {
  const admin = new pg.Pool({
    connectionString: BENCH_POSTGRES_URL,
    application_name: ADMIN_APPLICATION_NAME,
    max: 2,
  });
  admin.on("error", () => {});
  const unreachable = await probe(admin);
  if (unreachable) {
    console.error(`postgres bench: skipped: ${unreachable}`);
    await admin.end();
    return { skipped: unreachable };
  }
  const sink = await SinkProcess.start();
  try {
    return await use(admin, sink);
  } finally {
    sink.stop();
    await admin.end();
  }
}

/** One round of the comparison where the endpoints answer at once: each process count in turn. */
interface FastRound {
  pigeon: DrainResult[];
  boss: { shape: BossShape; result: DrainResult }[];
  /** Pigeon's best rate in the round over pg-boss's best (big fetches) in the same round. */
  ratio: number;
}

/** One round of slow endpoints: per process count, Pigeon's drain then pg-boss's. */
type SlowRound = { pigeon: DrainResult; boss: DrainResult }[];

/**
 * `rounds`: how many times the whole comparison runs, each round alternating Pigeon and pg-boss at
 * each process count; figures are the median round's (per process count, and of the best ÷ best
 * ratios). One round of the same code read 0.96 in one hour and 1.22 in another.
 */
export function runPostgresBench(rounds = 3) {
  return withBenchServices(async (admin, sink) => {
    console.error("postgres bench: raw undici ceiling…");
    const raw = await rawCeiling(sink);

    // Pigeon and pg-boss's best shot take turns at each process count, so the two sides of a
    // comparison are measured a few seconds apart, not a minute: this machine's speed drifts within
    // minutes. pg-boss's best shot: big fetches, so its poll interval (a loop that finds jobs still
    // waits out the interval) does not cap it, with the same connections in total as Pigeon's cap.
    const bossRun = async (shape: BossShape, workload: Workload = FAST_SINK) => {
      console.error(
        `postgres bench: pg-boss baseline, ${shape.processes} process(es) × ${shape.loops} work() × ` +
          `batchSize ${shape.batchSize}, ${deliveriesOf(workload)} jobs…`,
      );
      return pgBossDrain(sink, admin, shape, workload);
    };
    const fast: FastRound[] = [];
    for (let roundNo = 1; roundNo <= rounds; roundNo++) {
      const pigeon: DrainResult[] = [];
      const boss: FastRound["boss"] = [];
      for (const workers of WORKER_COUNTS) {
        console.error(
          `postgres bench: round ${roundNo}/${rounds}, Pigeon, ${workers} worker process(es), ${DELIVERIES} deliveries…`,
        );
        pigeon.push(await pigeonDrain(sink, admin, workers));
        const shape = bigBatchShape(workers, FAST_SINK);
        boss.push({ shape, result: await bossRun(shape) });
      }
      const ratio =
        Math.max(...pigeon.map((r) => r.drainPerSec)) / Math.max(...boss.map((b) => b.result.drainPerSec));
      fast.push({ pigeon, boss, ratio: round(ratio, 2) });
    }
    const medianRound = medianBy(fast, (r) => r.ratio);
    // Per process count, the median of the rounds' drains.
    const pigeon = WORKER_COUNTS.map((_, i) =>
      medianBy(
        fast.map((r) => r.pigeon[i]!),
        (r) => r.drainPerSec,
      ),
    );
    const boss = WORKER_COUNTS.map((_, i) =>
      medianBy(
        fast.map((r) => r.boss[i]!),
        (b) => b.result.drainPerSec,
      ),
    );
    const best = pigeon.reduce((a, b) => (b.drainPerSec > a.drainPerSec ? b : a));

    // Claim size follows the per-endpoint cap (a worker alone on an endpoint holds up to three caps
    // and refills at half), so a bigger cap means bigger claims.
    console.error(
      `postgres bench: Pigeon, ${best.processes} worker process(es), endpoint cap ${WIDE_ENDPOINT_CONCURRENCY}…`,
    );
    const wide = await pigeonDrain(sink, admin, best.processes, {
      ...FAST_SINK,
      endpointConcurrency: WIDE_ENDPOINT_CONCURRENCY,
    });

    // Same requests in flight as Pigeon's cap, split over as many processes as Pigeon's best run.
    const connections = Math.ceil(IN_FLIGHT / best.processes);
    const smallShape: BossShape = {
      processes: best.processes,
      loops: PGBOSS_LOOPS,
      batchSize: Math.ceil(connections / PGBOSS_LOOPS),
      connections,
    };
    const smallBatches = { shape: smallShape, result: await bossRun(smallShape) };

    // Slow endpoints: what more workers add while one cannot keep the machine busy.
    const slowRounds: SlowRound[] = [];
    for (let roundNo = 1; roundNo <= rounds; roundNo++) {
      const runs: SlowRound = [];
      for (const workers of WORKER_COUNTS) {
        console.error(
          `postgres bench: round ${roundNo}/${rounds}, endpoints answering after ${SLOW_SINK.answerAfterMs} ms, ` +
            `Pigeon and pg-boss, ${workers} process(es), ${deliveriesOf(SLOW_SINK)} deliveries…`,
        );
        const pigeonRun = await pigeonDrain(sink, admin, workers, SLOW_SINK);
        const bossDrain = await bossRun(bigBatchShape(workers, SLOW_SINK), SLOW_SINK);
        runs.push({ pigeon: pigeonRun, boss: bossDrain });
      }
      slowRounds.push(runs);
    }
    // Per process count, the pair whose Pigeon ÷ pg-boss ratio is the median of the rounds'.
    const slowRatio = (pair: SlowRound[number]) => pair.pigeon.drainPerSec / pair.boss.drainPerSec;
    const slow = WORKER_COUNTS.map((_, i) =>
      medianBy(
        slowRounds.map((r) => r[i]!),
        slowRatio,
      ),
    );

    const { rows } = await admin.query<{ setting: string; name: string }>(
      "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', 'server_version')",
    );
    const settings = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    const result = {
      machineCores: CORES,
      postgres: settings,
      deliveries: DELIVERIES,
      endpoints: ENDPOINTS,
      inFlightCap: IN_FLIGHT,
      rounds,
      rawCeilingReqPerSec: round(raw),
      pigeon: pigeon.map((r) => ({
        workers: r.processes,
        ...drainFigures(r),
      })),
      pigeonWideCap: {
        workers: wide.processes,
        endpointConcurrency: WIDE_ENDPOINT_CONCURRENCY,
        inFlightCap: ENDPOINTS * WIDE_ENDPOINT_CONCURRENCY,
        ...drainFigures(wide),
      },
      pgBoss: [...boss, smallBatches].map(({ shape, result: r }) => ({
        ...shape,
        ...drainFigures(r),
      })),
      pigeonBestVsPgBossBest: medianRound.ratio,
      pigeonBestVsPgBossBestByRound: fast.map((r) => r.ratio),
      fastRounds: fast.map((r) => ({
        pigeonPerSec: r.pigeon.map((d) => d.drainPerSec),
        pgBossPerSec: r.boss.map((b) => b.result.drainPerSec),
        ratio: r.ratio,
      })),
      slowEndpoints: {
        endpoints: SLOW_SINK.endpoints,
        deliveries: deliveriesOf(SLOW_SINK),
        answerAfterMs: SLOW_SINK.answerAfterMs,
        inFlightPerProcess: PIGEON_PROCESS_CONCURRENCY,
        runs: slow.map(({ pigeon: p, boss: b }, i) => ({
          processes: p.processes,
          pigeonPerSec: p.drainPerSec,
          pigeonCpuMsPerDelivery: p.cpuMsPerDelivery,
          pigeonMachineBusy: p.cpu.machineBusy,
          pgBossPerSec: b.drainPerSec,
          pgBossCpuMsPerDelivery: b.cpuMsPerDelivery,
          pgBossMachineBusy: b.cpu.machineBusy,
          ratio: round(slowRatio({ pigeon: p, boss: b }), 2),
          ratioByRound: slowRounds.map((r) => round(slowRatio(r[i]!), 2)),
        })),
      },
    };
    const plural = (n: number, word: string) => `${n} ${word}${n > 1 ? "es" : ""}`;
    const byRound = (values: number[]) => (rounds > 1 ? ` [rounds: ${values.join(" / ")}]` : "");
    printTable(
      `Scale-out on PostgreSQL (${DELIVERIES} deliveries, ${ENDPOINTS} endpoints, ${CORES} cores; ` +
        `the median of ${rounds} round(s))`,
      [
        ["raw undici POST loop (req/s)", result.rawCeilingReqPerSec],
        ...pigeon.map((r, i): [string, string] => [
          `Pigeon, ${plural(r.processes, "worker process")} (deliveries/s)`,
          `${r.drainPerSec} (steady ${r.steadyPerSec})${byRound(fast.map((f) => f.pigeon[i]!.drainPerSec))}`,
        ]),
        [
          `Pigeon, ${plural(wide.processes, "worker process")}, endpoint cap ${WIDE_ENDPOINT_CONCURRENCY} (${ENDPOINTS * WIDE_ENDPOINT_CONCURRENCY} in flight)`,
          `${wide.drainPerSec} (steady ${wide.steadyPerSec})`,
        ],
        ...boss.map(({ shape, result: r }, i): [string, string] => [
          `pg-boss 10, ${plural(shape.processes, "process")}, batchSize ${shape.batchSize} (jobs/s)`,
          `${r.drainPerSec} (steady ${r.steadyPerSec})${byRound(fast.map((f) => f.boss[i]!.result.drainPerSec))}`,
        ]),
        [
          `pg-boss 10, ${plural(smallShape.processes, "process")}, batchSize ${smallShape.batchSize} (jobs/s)`,
          `${smallBatches.result.drainPerSec} (steady ${smallBatches.result.steadyPerSec})`,
        ],
        [
          "Pigeon best / pg-boss best (each round's)",
          `${result.pigeonBestVsPgBossBest}${byRound(result.pigeonBestVsPgBossBestByRound)}`,
        ],
      ],
    );
    printTable(
      `Endpoints answering after ${SLOW_SINK.answerAfterMs} ms (${deliveriesOf(SLOW_SINK)} deliveries, ` +
        `${SLOW_SINK.endpoints} endpoints, ${PIGEON_PROCESS_CONCURRENCY} in flight per process; the round ` +
        `with the median Pigeon ÷ pg-boss per process count)`,
      slow.flatMap(({ pigeon: p, boss: b }, i): [string, string][] => [
        [`Pigeon, ${plural(p.processes, "worker process")} (deliveries/s)`, rateWithCpu(p)],
        [`pg-boss 10, ${plural(b.processes, "process")} (jobs/s)`, rateWithCpu(b)],
        [
          `Pigeon ÷ pg-boss, ${plural(p.processes, "process")}`,
          `${result.slowEndpoints.runs[i]!.ratio}${byRound(result.slowEndpoints.runs[i]!.ratioByRound)}`,
        ],
      ]),
    );
    console.log(
      "\nWhere the CPU went during each drain (workers + PostgreSQL CPU per delivery; CPU seconds):",
    );
    fast.forEach((f, r) => {
      const tag = rounds > 1 ? ` (round ${r + 1})` : "";
      for (const d of f.pigeon) console.log(`  Pigeon ×${d.processes}${tag}: ${cpuSummary(d)}`);
      for (const { shape, result: d } of f.boss)
        console.log(`  pg-boss ×${shape.processes}, batchSize ${shape.batchSize}${tag}: ${cpuSummary(d)}`);
    });
    console.log(
      `  Pigeon ×${wide.processes}, endpoint cap ${WIDE_ENDPOINT_CONCURRENCY}: ${cpuSummary(wide)}`,
    );
    console.log(
      `  pg-boss ×${smallShape.processes}, batchSize ${smallShape.batchSize}: ${cpuSummary(smallBatches.result)}`,
    );
    slowRounds.forEach((runs, r) => {
      const tag = rounds > 1 ? ` (round ${r + 1})` : "";
      for (const { pigeon: p, boss: b } of runs) {
        console.log(`  slow endpoints, Pigeon ×${p.processes}${tag}: ${cpuSummary(p)}`);
        console.log(`  slow endpoints, pg-boss ×${b.processes}${tag}: ${cpuSummary(b)}`);
      }
    });
    return result;
  });
}

/**
 * Profiling aid: one side's drains alone, Pigeon's (`--pigeon-only 1,2,2,1`) or pg-boss's
 * (`--pgboss-only 2`, shaped as in the full run), at the given process counts in turn, one JSON line
 * each; no baseline, so not a result to quote.
 */
async function runOneSide(side: "pigeon" | "pgboss", counts: number[], workload: Workload): Promise<void> {
  await withBenchServices(async (admin, sink) => {
    for (const workers of counts) {
      const r =
        side === "pigeon"
          ? await pigeonDrain(sink, admin, workers, workload)
          : await pgBossDrain(sink, admin, bigBatchShape(workers, workload), workload);
      console.log(
        JSON.stringify({
          workers,
          drainPerSec: r.drainPerSec,
          cpuMsPerDelivery: r.cpuMsPerDelivery,
          cpu: r.cpu,
        }),
      );
    }
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const flag = ["--pigeon-only", "--pgboss-only"].find((f) => process.argv.includes(f));
  if (flag) {
    const counts = (process.argv[process.argv.indexOf(flag) + 1] ?? "1").split(",").map(Number);
    if (counts.some((n) => !Number.isInteger(n) || n < 1))
      throw new Error(`${flag} takes process counts such as 1,2,4`);
    const workload = process.argv.includes("--slow-endpoints") ? SLOW_SINK : FAST_SINK;
    await runOneSide(flag === "--pigeon-only" ? "pigeon" : "pgboss", counts, workload);
  } else {
    const given = flagValue("rounds");
    const rounds = given === undefined ? 3 : Number(given);
    if (!Number.isInteger(rounds) || rounds < 1)
      throw new Error("--rounds takes a whole number of rounds, 1 or more");
    const result = await runPostgresBench(rounds);
    console.log(JSON.stringify({ postgres: result }, null, 2));
  }
  process.exit(0);
}
