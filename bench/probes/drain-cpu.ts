/**
 * Diagnostic probe, not part of `npm run bench`: the CPU one process spends per delivery draining a
 * preloaded SQLite backlog (20,000 deliveries to 4 endpoints) to a loopback sink in the same process,
 * and how much of the drain's wall time went to the store's claims and outcome records.
 * One process and its own CPU clock, so two builds compare without the load generator and the
 * machine's other processes that make bench/delivery.ts's rate move by a third between runs. Runs the
 * built code of the checkout given (default: this one), so a worktree of another commit can be
 * measured the same way:
 *
 *   npm run build && node --import tsx bench/probes/drain-cpu.ts [--repo /path/to/checkout]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";

const { values } = parseArgs({ options: { repo: { type: "string", default: "." } } });
const repo = resolve(values.repo);
const TOTAL = 20_000;
const ENDPOINTS = 4;

// The built modules of that checkout (their types are this checkout's, if it is another commit).
const { loadConfig } = (await import(
  `${repo}/dist/core/config.js`
)) as typeof import("../../src/core/config.js");
const { PigeonEngine } = (await import(`${repo}/dist/engine.js`)) as typeof import("../../src/engine.js");
const { createApplication } = (await import(
  `${repo}/dist/api/routes/applications.js`
)) as typeof import("../../src/api/routes/applications.js");
const { createEndpoint } = (await import(
  `${repo}/dist/api/routes/endpoints.js`
)) as typeof import("../../src/api/routes/endpoints.js");

type StoreCall = (...args: unknown[]) => Promise<unknown>;

/** Wraps the store's claim and outcome-record calls to add up their wall time and count them. */
function timeStoreCalls(store: Record<string, StoreCall>) {
  const timings = { claim: { ms: 0, calls: 0 }, record: { ms: 0, calls: 0 } };
  for (const [name, key] of [
    ["claimDueDeliveries", "claim"],
    ["completeDeliveries", "record"],
  ] as const) {
    const original = store[name]!.bind(store);
    store[name] = async (...args: unknown[]) => {
      const startedAt = performance.now();
      try {
        return await original(...args);
      } finally {
        timings[key].ms += performance.now() - startedAt;
        timings[key].calls += 1;
      }
    };
  }
  return timings;
}

let received = 0;
let allReceived: () => void = () => {};
const finished = new Promise<void>((done) => {
  allReceived = done;
});
const sink = createServer((req, res) => {
  req.resume();
  req.on("end", () => {
    res.end("ok");
    if (++received === TOTAL) allReceived();
  });
});
await new Promise<void>((listening) => sink.listen(0, "127.0.0.1", listening));
const port = (sink.address() as AddressInfo).port;
const dir = mkdtempSync(join(tmpdir(), "pigeon-drain-cpu-"));
const env = {
  PIGEON_DATA_DIR: dir,
  PIGEON_AUTH_TOKEN: "probe",
  PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8",
  PIGEON_HANDSHAKE: "off",
};
try {
  // Preloaded with the engine stopped, then drained by a fresh engine on the same file.
  const loader = await PigeonEngine.create(loadConfig(env));
  const app = await createApplication(loader, { name: "probe" });
  for (let i = 0; i < ENDPOINTS; i++)
    await createEndpoint(loader, app, { url: `http://127.0.0.1:${port}/e${i}` });
  for (let i = 0; i < TOTAL / ENDPOINTS; i++)
    await loader.publisher.publish(app, {
      eventType: "employee.created",
      payload: { i, name: "Ann Lee", email: "ann@example.test" },
    });
  await loader.stop();

  const engine = await PigeonEngine.create(loadConfig(env));
  const timings = timeStoreCalls(engine.store as unknown as Record<string, StoreCall>);
  const cpuBefore = process.cpuUsage();
  const startedAt = performance.now();
  engine.start();
  await finished;
  const cpu = process.cpuUsage(cpuBefore);
  const seconds = (performance.now() - startedAt) / 1000;
  await engine.stop();
  const result = {
    repo,
    deliveries: TOTAL,
    cpuUsPerDelivery: Math.round(((cpu.user + cpu.system) / TOTAL) * 10) / 10,
    deliveriesPerSec: Math.round(TOTAL / seconds),
    // Wall time inside the store's calls, per delivery: the claims and the outcome records.
    usPerDelivery: {
      claim: Math.round((timings.claim.ms * 1000) / TOTAL),
      record: Math.round((timings.record.ms * 1000) / TOTAL),
    },
    claims: timings.claim.calls,
    records: timings.record.calls,
  };
  console.log(`CPU per delivery ${result.cpuUsPerDelivery} µs, ${result.deliveriesPerSec} deliveries/s`);
  console.log(JSON.stringify(result));
} finally {
  sink.close();
  rmSync(dir, { recursive: true, force: true });
}
