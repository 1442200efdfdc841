/**
 * The baseline's worker process: pg-boss 10 jobs, each an undici POST to the sink, written the way
 * a Node team would write a webhook sender on pg-boss today. Forked by bench/postgres.ts.
 *
 * - `work()` is called `loops` times with `batchSize` jobs per fetch (pg-boss 10 has no
 *   per-worker concurrency option; several work() loops and batches are how it is done), and a
 *   batch is sent concurrently; jobs in hand per process: loops × batchSize, of which up to
 *   `connections` are on the wire at once.
 * - Each request is signed like Pigeon's (Standard Webhooks HMAC-SHA256 with node:crypto), so the
 *   work per delivery is comparable. A non-2xx answer throws, so pg-boss retries the job.
 * - pg-boss's defaults otherwise: jobs are durable rows, fetched with SKIP LOCKED and completed
 *   in a later statement; the polling interval is pg-boss's minimum (0.5 s; the default is 2 s).
 *
 * Configured by the PGBOSS_BENCH_CONFIG environment variable (JSON); IPC: sends "ready" once
 * pg-boss has started; `{work: queue}` starts working a queue (the warm-up's, then the measured
 * one), `{stop: queue}` stops working one.
 */
import { createHmac } from "node:crypto";
import PgBoss from "pg-boss";
import { Agent } from "undici";

interface WorkerConfig {
  connectionString: string;
  schema: string;
  loops: number;
  batchSize: number;
  /** Connections to the sink (requests on the wire at once); jobs beyond that wait in undici. */
  connections: number;
  secret: string;
}

interface JobData {
  url: string;
  payload: Record<string, unknown>;
}

const config = JSON.parse(process.env.PGBOSS_BENCH_CONFIG ?? "{}") as WorkerConfig;
const agent = new Agent({
  connections: config.connections,
  pipelining: 1,
  keepAliveTimeout: 30_000,
});
const key = Buffer.from(config.secret, "base64");

async function post(id: string, data: JobData): Promise<void> {
  const body = JSON.stringify(data.payload);
  const timestamp = Math.floor(Date.now() / 1000).toString();
  const signature = createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64");
  const url = new URL(data.url);
  const res = await agent.request({
    origin: url.origin,
    path: url.pathname,
    method: "POST",
    headers: {
      "content-type": "application/json",
      "webhook-id": id,
      "webhook-timestamp": timestamp,
      "webhook-signature": `v1,${signature}`,
    },
    body,
    headersTimeout: 15_000,
    bodyTimeout: 15_000,
  });
  await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300) throw new Error(`endpoint answered ${res.statusCode}`);
}

const boss = new PgBoss({
  connectionString: config.connectionString,
  schema: config.schema,
  application_name: "pgboss-bench",
});
boss.on("error", (error) => console.error("pg-boss worker:", error.message));
await boss.start();
process.send?.("ready");

process.on("message", async (m: { work?: string; stop?: string }) => {
  if (m.stop) await boss.offWork(m.stop);
  if (!m.work) return;
  for (let i = 0; i < config.loops; i++) {
    await boss.work<JobData>(
      m.work,
      { batchSize: config.batchSize, pollingIntervalSeconds: 0.5 },
      async (jobs) => {
        await Promise.all(jobs.map((job) => post(job.id, job.data)));
      },
    );
  }
});
process.on("disconnect", () => process.exit(0));
