/** Developer probe (not part of npm run bench): time spent in claim and flush per delivery, in-process. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createApplication } from "../src/api/routes/applications.js";
import { createEndpoint } from "../src/api/routes/endpoints.js";
import { loadConfig } from "../src/core/config.js";
import { PigeonEngine } from "../src/engine.js";
import { SinkProcess } from "./harness.js";

const sink = await SinkProcess.start();
const dir = mkdtempSync(join(tmpdir(), "pigeon-probe-"));
const env = {
  PIGEON_DATA_DIR: dir,
  PIGEON_AUTH_TOKEN: "x",
  PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8",
  PIGEON_HANDSHAKE: "off",
};
let engine = await PigeonEngine.create(loadConfig(env));
const app = await createApplication(engine, { name: "probe" });
for (const p of ["/a", "/b", "/c", "/d"]) await createEndpoint(engine, app, { url: sink.url(p) });
for (let i = 0; i < 5000; i++) await engine.publisher.publish(app, { eventType: "e.c", payload: { i } });
await engine.stop();
engine = await PigeonEngine.create(loadConfig(env));
const store = engine.store as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
const timings = { claimMs: 0, claims: 0, flushMs: 0, flushes: 0 };
for (const [name, key] of [
  ["claimDueDeliveries", "claim"],
  ["completeDeliveries", "flush"],
] as const) {
  const original = store[name]!.bind(store);
  store[name] = async (...args: unknown[]) => {
    const t0 = performance.now();
    const result = await original(...args);
    timings[`${key}Ms`] += performance.now() - t0;
    timings[key === "claim" ? "claims" : "flushes"] += 1;
    return result;
  };
}
await sink.reset();
const started = performance.now();
engine.start();
while ((await sink.stats()).total < 20_000) await new Promise((r) => setTimeout(r, 20));
const ms = performance.now() - started;
await engine.stop();
sink.stop();
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    deliveriesPerSec: Math.round(20_000 / (ms / 1000)),
    usPerDelivery: { claim: (timings.claimMs * 1000) / 20_000, flush: (timings.flushMs * 1000) / 20_000 },
    ...timings,
  }),
);
process.exit(0);
