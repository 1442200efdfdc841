/**
 * Diagnostic probe, not part of `npm run bench`: PostgreSQL's CPU for one claim statement and one
 * outcome record, each run many times on one fixed state and rolled back, with nothing else running
 * against the database. It tells where a worker's statements spend PostgreSQL's time without the
 * noise of a drain (whose run-to-run spread on this 2-core machine hides anything under ~10 %); it
 * cannot tell what a change does to a drain: compare drains for that (bench/postgres.ts). A change
 * to the outcome statement once measured 40 % cheaper here and 80 % dearer in the drain.
 *
 * The state, as bench/postgres.ts leaves it when its measured drain starts: 100 endpoints, 400
 * messages, 20,000 delivered (the warm-up's) and 20,000 pending deliveries; four workers, three of which
 * hold 512 leases each on their own quarter of the endpoints and are live, and the measured worker
 * holding 256. Between batches of ten the table is vacuumed and every page then touched once, so the
 * rolled-back versions do not pile up and the pages are not all-visible (as on a busy table, where
 * counting leases reads each lease's row).
 *
 *   node --import tsx bench/probes/pg-statements.ts [--iterations 200] [--claim-limit 300] [--outcomes 115]
 */
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import pg from "pg";
import { claimQuery } from "../../src/store/postgres/claim.js";
import { completeQuery } from "../../src/store/postgres/complete.js";
import { PostgresStore } from "../../src/store/postgres/postgres-store.js";
import type { DeliveryOutcome } from "../../src/store/store.js";
import { BENCH_POSTGRES_URL, printTable } from "../harness.js";

const ENDPOINTS = 100;
const MESSAGES = 200;
/** As many messages again, delivered: with a table half this size PostgreSQL read all of it to find
 * an outcome record's rows, which the drain's table never made it do (auto_explain). */
const DELIVERED_MESSAGES = 200;
const WORKERS = 4;
const LEASES_PER_OTHER_WORKER = 512;
const LEASES_HELD_HERE = 256;
const LEASE_MS = 60_000;
const ME = "w0";

const { values: flags } = parseArgs({
  options: {
    iterations: { type: "string", default: "200" },
    "claim-limit": { type: "string", default: "300" },
    outcomes: { type: "string", default: "115" },
  },
});
const iterations = Number(flags.iterations);
const claimLimit = Number(flags["claim-limit"]);
const outcomeCount = Number(flags.outcomes);

const schema = `probe_statements_${process.pid}`;
const migrated = await PostgresStore.open(`${BENCH_POSTGRES_URL}?schema=${schema}`);
await migrated.close();
const client = new pg.Client(BENCH_POSTGRES_URL);
await client.connect();

try {
  await client.query(`SET search_path = "${schema}"`);
  const held = await buildState(client, Date.now());
  const backendPid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
  const cpuMs = () => backendCpuMs(backendPid);

  const claim = await measure(client, cpuMs, iterations, "probe_claim", () => {
    const now = Date.now();
    return claimQuery(
      {
        now,
        limit: claimLimit,
        leaseUntil: now + LEASE_MS,
        excludeEndpointIds: [],
        endpointConcurrency: 32,
        endpointHoldLimit: 96,
        heldByEndpoint: held,
        peerTimeoutMs: 600_000,
      },
      ME,
    );
  });

  const mine = (
    await client.query<{ id: string; msg_id: string; endpoint_id: string }>(
      "SELECT id, msg_id, endpoint_id FROM deliveries WHERE locked_by = $1 ORDER BY id LIMIT $2",
      [ME, outcomeCount],
    )
  ).rows;
  let attemptSeq = 0;
  const outcome = await measure(client, cpuMs, iterations, "probe_outcome", () => {
    const now = Date.now();
    const outcomes: DeliveryOutcome[] = mine.map((row) => ({
      deliveryId: row.id,
      endpointId: row.endpoint_id,
      result: "succeeded",
      attempt: {
        id: `atmpt_probe_${attemptSeq++}`,
        msgId: row.msg_id,
        endpointId: row.endpoint_id,
        deliveryId: row.id,
        url: "http://127.0.0.1:1/hook",
        succeeded: true,
        responseStatusCode: 200,
        response: "ok",
        responseDurationMs: 100,
        errorCode: null,
        triggerType: 0,
        createdAt: now,
      },
    }));
    return completeQuery(outcomes, now);
  });

  const result = {
    iterations,
    claim: {
      rows: claimLimit,
      cpuMsPerStatement: claim.cpuMs,
      cpuUsPerRow: round((claim.cpuMs * 1000) / claimLimit),
    },
    outcomeRecord: {
      rows: mine.length,
      cpuMsPerStatement: outcome.cpuMs,
      cpuUsPerRow: round((outcome.cpuMs * 1000) / mine.length),
    },
  };
  printTable("PostgreSQL CPU per statement on a fixed four-worker state", [
    [`claim of ${claimLimit} rows (ms)`, result.claim.cpuMsPerStatement],
    ["claim, per row (µs)", result.claim.cpuUsPerRow],
    [`outcome record of ${mine.length} (ms)`, result.outcomeRecord.cpuMsPerStatement],
    ["outcome record, per row (µs)", result.outcomeRecord.cpuUsPerRow],
  ]);
  console.log(JSON.stringify({ pgStatements: result }, null, 2));
} finally {
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await client.end();
}

/** Fills the schema; returns what the measured worker holds per endpoint. */
async function buildState(db: pg.Client, now: number): Promise<Record<string, number>> {
  const id = (prefix: string, n: string, width: number) => `'${prefix}_' || lpad(${n}::text, ${width}, '0')`;
  await db.query(
    "INSERT INTO applications (id, name, created_at, updated_at) VALUES ('app_probe', 'probe', $1, $1)",
    [now],
  );
  await db.query(
    `INSERT INTO endpoints (id, app_id, url, secrets, status, created_at, updated_at)
     SELECT ${id("ep", "i", 4)}, 'app_probe', 'http://127.0.0.1:1/', '[]', 'active', $1, $1
       FROM generate_series(0, ${ENDPOINTS - 1}) i`,
    [now],
  );
  await db.query(
    `INSERT INTO messages (id, app_id, event_type, payload, created_at)
     SELECT ${id("msg", "i", 6)}, 'app_probe', 'employee.created', repeat('p', 200), $1
       FROM generate_series(0, ${MESSAGES - 1}) i`,
    [now],
  );
  await db.query(
    `INSERT INTO messages (id, app_id, event_type, payload, created_at)
     SELECT 'msg_done_' || lpad(i::text, 6, '0'), 'app_probe', 'employee.created', repeat('p', 200), $1
       FROM generate_series(0, ${DELIVERED_MESSAGES - 1}) i`,
    [now],
  );
  await db.query(
    `INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at, created_at, updated_at)
     SELECT 'dlv_done_' || lpad(m::text, 6, '0') || lpad(e::text, 4, '0'), 'msg_done_' || lpad(m::text, 6, '0'),
            ${id("ep", "e", 4)}, 'app_probe', 'succeeded', 1, $1, $1, $1
       FROM generate_series(0, ${DELIVERED_MESSAGES - 1}) m, generate_series(0, ${ENDPOINTS - 1}) e
      ORDER BY m, e`,
    [now],
  );
  // In message order across the endpoints, as a fan-out writes them.
  await db.query(
    `INSERT INTO deliveries (id, msg_id, endpoint_id, app_id, status, next_attempt_at, created_at, updated_at)
     SELECT 'dlv_' || lpad(m::text, 6, '0') || lpad(e::text, 4, '0'), ${id("msg", "m", 6)}, ${id("ep", "e", 4)},
            'app_probe', 'pending', $1::bigint - 1000, $1, $1
       FROM generate_series(0, ${MESSAGES - 1}) m, generate_series(0, ${ENDPOINTS - 1}) e
      ORDER BY m, e`,
    [now],
  );
  // Worker k serves the endpoints whose number is k modulo WORKERS.
  const lease = async (worker: string, quarter: number, count: number) =>
    db.query<{ endpoint_id: string }>(
      `UPDATE deliveries SET status = 'sending', locked_by = $1, next_attempt_at = $2::bigint + ${LEASE_MS},
              locked_until = $2::bigint + ${LEASE_MS}
        WHERE id IN (SELECT id FROM deliveries
                      WHERE status = 'pending' AND substr(endpoint_id, 4)::int % ${WORKERS} = $3
                      ORDER BY next_attempt_at, id LIMIT $4)
        RETURNING endpoint_id`,
      [worker, now, quarter, count],
    );
  for (let k = 0; k < WORKERS; k++) {
    await db.query("INSERT INTO worker_heartbeats (id, seen_at) VALUES ($1, $2)", [`w${k}`, now]);
  }
  for (let k = 1; k < WORKERS; k++) await lease(`w${k}`, k, LEASES_PER_OTHER_WORKER);
  const held: Record<string, number> = {};
  for (const row of (await lease(ME, 0, LEASES_HELD_HERE)).rows)
    held[row.endpoint_id] = (held[row.endpoint_id] ?? 0) + 1;
  await db.query("VACUUM ANALYZE deliveries");
  return held;
}

/** Runs the statement `count` times (after 20 unmeasured), each in a transaction rolled back. */
async function measure(
  db: pg.Client,
  cpuMs: () => number,
  count: number,
  name: string,
  statement: () => { text: string; values: unknown[] },
): Promise<{ cpuMs: number }> {
  let spent = 0;
  for (let i = -20; i < count; i++) {
    if (i % 10 === 0) await refreshPages(db);
    const query = statement();
    await db.query("BEGIN");
    const before = cpuMs();
    // Named, as the store prepares it.
    await db.query({ name, text: query.text, values: query.values });
    if (i >= 0) spent += cpuMs() - before;
    await db.query("ROLLBACK");
  }
  return { cpuMs: round(spent / count) };
}

/** Vacuums away the rolled-back versions, then touches one row per page so no page is all-visible. */
async function refreshPages(db: pg.Client): Promise<void> {
  await db.query("VACUUM deliveries");
  await db.query("VACUUM attempts");
  await db.query("BEGIN");
  await db.query(
    `UPDATE deliveries SET updated_at = updated_at
      WHERE ctid IN (SELECT ('(' || b || ',1)')::tid
                       FROM generate_series(0, pg_relation_size('deliveries') / 8192 - 1) b)`,
  );
  await db.query("ROLLBACK");
}

/** The backend's user + system CPU so far, in ms (the probe runs on the database's machine). */
function backendCpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  // utime and stime, in clock ticks of 10 ms: summed over many statements the rounding averages out.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
