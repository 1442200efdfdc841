/**
 * Inbound intake benchmark: Pigeon's ingest route (verify → group-committed SQLite insert with
 * synchronous=FULL → 200, processor running) against a bare node:http server that only reads the
 * body and answers 200, measured in the same run by the same load generator.
 *
 *     npm run build && node --import tsx bench/inbound.ts [--seconds 5] [--concurrency 64] [--rate 1000] [--no-processing] [--reference] [--postgres] [--sources] [--rounds 3]
 *
 * Pigeon runs from the built code (`dist/`), as `npm start` runs it; `--sources` runs the sources
 * through tsx instead (see pigeonModule).
 * `--postgres` puts Pigeon's store (and so its inbox) on PostgreSQL (PIGEON_BENCH_POSTGRES_URL, in a
 * schema of its own, dropped after) instead of the embedded SQLite file.
 * `--no-processing` measures intake alone (no handler, items stay queued); `--reference` adds a closed
 * loop against bench/minimal-intake.ts, about the least a durable intake can do; `--pigeon-only`
 * (with `--rate-only`) runs just Pigeon once more after a warm-up, for profiling, and with
 * `--cpu-profile FILE` writes a CPU profile of that run alone.
 *
 * The load generator runs in a child process (its own event loop and core) with undici: a closed loop at
 * fixed concurrency for throughput (`--rounds` alternating bare/Pigeon pairs, the median ratio
 * reported), then an open loop at a fixed rate for latency, where latency is measured from each
 * request's scheduled start so a stalled server cannot hide its queue.
 * Prints JSON, then a table. Numbers, never pass/fail.
 */

import { fork } from "node:child_process";
import { createHmac, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { Session } from "node:inspector/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { Pool } from "undici";
import { BENCH_POSTGRES_URL, flagValue, medianBy } from "./harness.js";
import { startMinimalIntake } from "./minimal-intake.js";

export interface LoadSpec {
  mode: "closed" | "rate";
  url: string;
  secret: string;
  seconds: number;
  concurrency: number;
  rate: number;
  /** Distinguishes webhook-ids between runs. */
  tag: string;
}

interface RunResult extends LoadResult {
  serverCpuUsPerRequest: number;
  /** Event-loop busy time per request: the thread that parses, verifies and answers. */
  mainThreadUsPerRequest: number;
  serverLoopDelayP99Ms: number;
  serverLoopDelayMaxMs: number;
  /**
   * Items the handler finished during the run, per second. Intake is measured with processing
   * beside it, on the same cores: a change that lets processing keep up (handled ≈ received)
   * can lower the intake figure, and one that lets it fall behind can raise it.
   */
  handledPerSec: number;
}

interface LoadResult {
  requests: number;
  errors: number;
  non2xx: number;
  seconds: number;
  ratePerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

// ---------------------------------------------------------------------------------------------
// Load generator (worker thread)

async function generate(spec: LoadSpec): Promise<LoadResult> {
  const url = new URL(spec.url);
  const pool = new Pool(url.origin, { connections: spec.concurrency, pipelining: 1 });
  const key = Buffer.from(spec.secret.slice(6), "base64");
  const latencies: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let n = 0;

  // A typical webhook: ~400 bytes of JSON, Standard Webhooks-signed, unique id per request.
  const filler = randomBytes(96).toString("hex");
  const makeRequest = () => {
    const id = `msg_${spec.tag}_${n++}`;
    const body = JSON.stringify({ type: "employee.created", data: { id, name: "Ada Lovelace", filler } });
    const ts = Math.floor(Date.now() / 1000);
    const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
    return {
      body,
      headers: {
        "content-type": "application/json",
        "webhook-id": id,
        "webhook-timestamp": String(ts),
        "webhook-signature": `v1,${sig}`,
      },
    };
  };

  const once = async (scheduledAt: number) => {
    const { body, headers } = makeRequest();
    try {
      const res = await pool.request({ path: url.pathname, method: "POST", body, headers });
      await res.body.dump();
      if (res.statusCode < 200 || res.statusCode >= 300) non2xx++;
    } catch {
      errors++;
    }
    latencies.push(performance.now() - scheduledAt);
  };

  const start = performance.now();
  const end = start + spec.seconds * 1000;
  if (spec.mode === "closed") {
    await Promise.all(
      Array.from({ length: spec.concurrency }, async () => {
        while (performance.now() < end) await once(performance.now());
      }),
    );
  } else {
    // Open loop: every request has a slot at start + i/rate; a late loop sends the backlog at
    // once, and its latency counts from the slot, not from when it finally went out.
    const inflight = new Set<Promise<void>>();
    const interval = 1000 / spec.rate;
    let i = 0;
    while (performance.now() < end) {
      const now = performance.now();
      while (start + i * interval <= now) {
        const p = once(start + i * interval).finally(() => inflight.delete(p));
        inflight.add(p);
        i++;
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    await Promise.all(inflight);
  }
  const seconds = (performance.now() - start) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  return {
    requests: latencies.length,
    errors,
    non2xx,
    seconds: Number(seconds.toFixed(2)),
    ratePerSec: Math.round(latencies.length / seconds),
    p50Ms: Number(percentile(latencies, 50).toFixed(2)),
    p99Ms: Number(percentile(latencies, 99).toFixed(2)),
    maxMs: Number((latencies.at(-1) ?? Number.NaN).toFixed(2)),
  };
}

const IS_LOADGEN = process.argv.includes("--loadgen");

if (IS_LOADGEN) {
  process.once("message", (spec: LoadSpec) => {
    void generate(spec).then((result) => {
      process.send!(result, () => process.exit(0));
    });
  });
}

/** Runs one load in a fresh child process (this file again; through tsx when run as TypeScript). */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const self = fileURLToPath(import.meta.url);
    const execArgv = self.endsWith(".ts") ? ["--import", "tsx"] : [];
    const child = fork(self, ["--loadgen"], { execArgv });
    child.once("message", (result: LoadResult) => resolve(result));
    child.once("error", reject);
    child.once("exit", (code) => {
      if (code !== 0) reject(new Error(`load generator exited with ${code}`));
    });
    child.send(spec);
  });
}

// ---------------------------------------------------------------------------------------------
// Servers and the run (main thread)

export interface InboundBenchOptions {
  /** Length of each measured run. */
  seconds: number;
  /** Requests in flight in the closed loop. */
  concurrency: number;
  /** Requests per second in the fixed-rate run. */
  rate: number;
  /** Run a handler during the measurement (as in production); false measures intake alone. */
  processing: boolean;
  /** Profiling aid: after a warm-up, run only Pigeon once in this mode and return that. */
  only?: LoadSpec["mode"];
  /**
   * With `only`: write a CPU profile of this process (Pigeon's server) during that one run to
   * this file. Why not `node --cpu-prof`: that profiles the warm-up too, whose closed loop swamps
   * a fixed-rate run's profile.
   */
  cpuProfile?: string;
  /** Also load bench/minimal-intake.ts in the closed loop: what syncing before answering costs at least. */
  reference?: boolean;
  /** Pigeon on PostgreSQL (BENCH_POSTGRES_URL, a schema of its own) instead of SQLite. */
  postgres?: boolean;
  /** Which of Pigeon's code to run: the build (`dist/`, the default) or the sources through tsx. */
  code?: "built" | "sources";
  /** Alternating bare/Pigeon pairs of the closed loop; the figure is the pair with the median ratio. */
  rounds?: number;
}

/**
 * Pigeon's modules from the built code (`dist/`, what `npm start` runs) or from the sources through
 * tsx. The built code is the default: tsx compiles with esbuild's keepNames, which wraps every
 * function created at run time in a helper that defines its `name`; on the intake's hot path
 * (closures per request) that was ~3 % of the event loop's busy time in a CPU profile, a cost the
 * built code does not have.
 */
async function pigeonModule(code: "built" | "sources", path: string): Promise<unknown> {
  if (code === "sources")
    return import(new URL(`../src/${path.replace(/\.js$/, ".ts")}`, import.meta.url).href);
  const url = new URL(`../dist/${path}`, import.meta.url);
  if (!existsSync(url))
    throw new Error(
      `bench/inbound.ts runs the built code: run \`npm run build\` first (missing ${url.pathname})`,
    );
  return import(url.href);
}

function argument(name: string, fallback: number): number {
  const given = flagValue(name);
  const value = given === undefined ? fallback : Number(given);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name} must be a positive number`);
  return value;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function withSchema(url: string, schema: string): string {
  const parsed = new URL(url);
  parsed.searchParams.set("schema", schema);
  return parsed.toString();
}

async function dropSchema(url: string, schema: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/**
 * Bare node:http vs Pigeon's ingest route, both loaded by the same generator: a closed loop at
 * `concurrency` for throughput, then a fixed `rate` for latency. Prints a table; returns the figures.
 */
export async function runInboundBench(options: Partial<InboundBenchOptions> = {}): Promise<unknown> {
  const {
    seconds = 5,
    concurrency = 64,
    rate = 1000,
    processing = true,
    only,
    reference = false,
    postgres = false,
    code = "built",
    rounds = 3,
  } = options;

  const { loadConfig } = (await pigeonModule(
    code,
    "core/config.js",
  )) as typeof import("../src/core/config.js");
  const { PigeonEngine } = (await pigeonModule(code, "engine.js")) as typeof import("../src/engine.js");
  const { createApiServer } = (await pigeonModule(
    code,
    "api/server.js",
  )) as typeof import("../src/api/server.js");

  const dir = mkdtempSync(join(tmpdir(), "pigeon-bench-inbound-"));
  const schema = `bench_inbound_${randomBytes(4).toString("hex")}`;
  const databaseUrl = postgres ? withSchema(BENCH_POSTGRES_URL, schema) : undefined;
  const config = loadConfig(
    {
      PIGEON_DATA_DIR: dir,
      PIGEON_AUTH_TOKEN: "bench",
      ...(databaseUrl ? { PIGEON_DATABASE_URL: databaseUrl } : {}),
    },
    { host: "127.0.0.1", port: 0 },
  );
  const engine = await PigeonEngine.create(config);
  const secret = `whsec_${randomBytes(24).toString("base64")}`;
  const source = await engine.inbound.sources.create({
    name: "bench",
    provider: "standard-webhooks",
    secrets: [secret],
    options: { concurrency: 32 },
  });
  // Processing runs during the measurement, as in production: a trivial handler.
  let handled = 0;
  if (processing) {
    engine.inbound.on("*", () => {
      handled++;
    });
  }
  engine.start();
  const pigeon = createApiServer(engine, { authToken: "bench" });
  const pigeonUrl = `${await listen(pigeon)}/in/${source.id}`;

  const bare = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      Buffer.concat(chunks);
      res.writeHead(200, { "content-length": "0" });
      res.end();
    });
  });
  const bareUrl = `${await listen(bare)}/in/bare`;
  const minimal = reference ? await startMinimalIntake(secret) : undefined;

  // Each run starts from an empty queue, so a backlog left by the previous one (a closed loop
  // outruns the processor) is not billed to the next.
  const drained = async () => {
    for (;;) {
      const { counts } = await engine.inbound.stats(source);
      if (!processing || counts.received + counts.processing === 0) return;
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  const run = async (target: string, url: string, mode: LoadSpec["mode"]): Promise<RunResult> => {
    await drained();
    // The servers' event-loop delay: how long anything ready to run waited, ours included.
    const loop = monitorEventLoopDelay({ resolution: 1 });
    loop.enable();
    // CPU of this process (every thread) per request: less sensitive than rates to whatever else
    // the machine is running.
    const cpuBefore = process.cpuUsage();
    const eluBefore = performance.eventLoopUtilization();
    const handledBefore = handled;
    const result = await runLoad({
      mode,
      url,
      secret,
      seconds,
      concurrency,
      rate,
      tag: `${target}${mode}${randomBytes(3).toString("hex")}`,
    });
    loop.disable();
    const cpu = process.cpuUsage(cpuBefore);
    const elu = performance.eventLoopUtilization(eluBefore);
    return {
      ...result,
      serverCpuUsPerRequest: Math.round((cpu.user + cpu.system) / Math.max(1, result.requests)),
      mainThreadUsPerRequest: Math.round((elu.active * 1000) / Math.max(1, result.requests)),
      serverLoopDelayP99Ms: Number((loop.percentile(99) / 1e6).toFixed(2)),
      serverLoopDelayMaxMs: Number((loop.max / 1e6).toFixed(2)),
      handledPerSec: Math.round((handled - handledBefore) / result.seconds),
    };
  };

  const close = async () => {
    pigeon.closeAllConnections();
    bare.closeAllConnections();
    await new Promise<void>((r) => pigeon.close(() => r()));
    await new Promise<void>((r) => bare.close(() => r()));
    await minimal?.close();
    await engine.stop();
    rmSync(dir, { recursive: true, force: true });
    if (postgres) await dropSchema(BENCH_POSTGRES_URL, schema);
  };
  if (only) {
    await run("pigeon", pigeonUrl, "closed");
    const result = options.cpuProfile
      ? await profiled(options.cpuProfile, () => run("pigeon", pigeonUrl, only))
      : await run("pigeon", pigeonUrl, only);
    await close();
    return result;
  }
  // Warm both up (JIT, connection setup), then measure, bare first each time.
  await run("bare", bareUrl, "closed");
  await run("pigeon", pigeonUrl, "closed");
  // The closed loop in alternating rounds, each pair back to back: this machine's speed swings
  // within a minute, so one pair could land bare on a fast moment and Pigeon on a slow one. The
  // figure is the round with the median ratio.
  const closedRounds: { bare: RunResult; pigeon: RunResult; ratio: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    const bareRun = await run("bare", bareUrl, "closed");
    const pigeonRun = await run("pigeon", pigeonUrl, "closed");
    closedRounds.push({
      bare: bareRun,
      pigeon: pigeonRun,
      ratio: Number((pigeonRun.ratePerSec / bareRun.ratePerSec).toFixed(3)),
    });
  }
  const median = medianBy(closedRounds, (r) => r.ratio);
  const results = {
    closedLoop: { bare: median.bare, pigeon: median.pigeon },
    fixedRate: { bare: await run("bare", bareUrl, "rate"), pigeon: await run("pigeon", pigeonUrl, "rate") },
  };
  const referenceRun = minimal ? await run("minimal", minimal.url, "closed") : undefined;
  const stats = await engine.inbound.stats(source);

  const summary = {
    benchmark: "inbound-intake",
    node: process.version,
    settings: {
      seconds,
      concurrency,
      rate,
      processing,
      code,
      bodyBytes: "~450",
      durability: postgres
        ? "PostgreSQL (synchronous_commit as configured); every commit durable before its 2xx"
        : "SQLite WAL; every commit fsynced before its 2xx",
    },
    ...results,
    closedLoopRounds: closedRounds.map((r) => ({
      bareRatePerSec: r.bare.ratePerSec,
      pigeonRatePerSec: r.pigeon.ratePerSec,
      pigeonMainThreadUsPerRequest: r.pigeon.mainThreadUsPerRequest,
      ratio: r.ratio,
    })),
    ratio: {
      intakeVsBare: median.ratio,
      ...(referenceRun
        ? {
            minimalDurableVsBare: Number(
              (referenceRun.ratePerSec / results.closedLoop.bare.ratePerSec).toFixed(3),
            ),
          }
        : {}),
    },
    ...(referenceRun ? { minimalDurableIntake: referenceRun } : {}),
    pigeonInbox: { ...stats.counts, handledDuringRun: handled },
  };
  const row = (name: string, r: RunResult) =>
    `${name.padEnd(30)} ${String(r.ratePerSec).padStart(8)} ${r.p50Ms.toFixed(2).padStart(8)} ${r.p99Ms.toFixed(2).padStart(8)} ${r.maxMs.toFixed(2).padStart(9)} ${String(r.errors + r.non2xx).padStart(7)} ${r.serverLoopDelayP99Ms.toFixed(2).padStart(10)} ${String(r.serverCpuUsPerRequest).padStart(8)} ${String(r.mainThreadUsPerRequest).padStart(8)} ${(r === results.closedLoop.pigeon || r === results.fixedRate.pigeon ? String(r.handledPerSec) : "").padStart(9)}`;
  console.log("");
  console.log(
    `${"run".padEnd(30)} ${"req/s".padStart(8)} ${"p50 ms".padStart(8)} ${"p99 ms".padStart(8)} ${"max ms".padStart(9)} ${"failed".padStart(7)} ${"loop p99".padStart(10)} ${"cpu µs".padStart(8)} ${"loop µs".padStart(8)} ${"handled/s".padStart(9)}`,
  );
  console.log(row(`bare, ${concurrency} in flight`, results.closedLoop.bare));
  console.log(row(`pigeon, ${concurrency} in flight`, results.closedLoop.pigeon));
  if (rounds > 1) {
    const others = closedRounds.filter((r) => r !== median);
    console.log(
      `  (the median of ${rounds} rounds; the others: ${others.map((r) => `${r.pigeon.ratePerSec} / ${r.bare.ratePerSec} = ${r.ratio}`).join(", ")})`,
    );
  }
  console.log(row(`bare, ${rate} req/s`, results.fixedRate.bare));
  console.log(row(`pigeon, ${rate} req/s`, results.fixedRate.pigeon));
  if (referenceRun) console.log(row(`minimal durable, ${concurrency} in fl.`, referenceRun));
  console.log(`\nPigeon intake / bare server: ${summary.ratio.intakeVsBare} (median of ${rounds} rounds)`);
  if (referenceRun) {
    console.log(
      `Minimal durable intake / bare server: ${summary.ratio.minimalDurableVsBare} (reference, not a goal)`,
    );
  }
  await close();
  return summary;
}

/** Runs `work` under V8's CPU profiler and writes the profile (`.cpuprofile`, for DevTools) to `file`. */
async function profiled<T>(file: string, work: () => Promise<T>): Promise<T> {
  const session = new Session();
  session.connect();
  try {
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
    const result = await work();
    const { profile } = await session.post("Profiler.stop");
    writeFileSync(file, JSON.stringify(profile));
    console.error(`CPU profile of the measured run: ${file}`);
    return result;
  } finally {
    session.disconnect();
  }
}

const isEntryPoint =
  process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntryPoint && !IS_LOADGEN) {
  const only = process.argv.includes("--pigeon-only")
    ? process.argv.includes("--rate-only")
      ? "rate"
      : "closed"
    : undefined;
  const cpuProfile = flagValue("cpu-profile");
  if (cpuProfile && !only)
    throw new Error("--cpu-profile profiles the one run of --pigeon-only: add --pigeon-only");
  const summary = await runInboundBench({
    seconds: argument("seconds", 5),
    concurrency: argument("concurrency", 64),
    rate: argument("rate", 1000),
    processing: !process.argv.includes("--no-processing"),
    reference: process.argv.includes("--reference"),
    postgres: process.argv.includes("--postgres"),
    code: process.argv.includes("--sources") ? "sources" : "built",
    rounds: Math.max(1, Math.round(argument("rounds", 3))),
    ...(only ? { only } : {}),
    ...(cpuProfile ? { cpuProfile } : {}),
  });
  console.log(`\n${JSON.stringify(summary, null, 2)}`);
}
