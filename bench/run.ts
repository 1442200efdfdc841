/**
 * `npm run bench`: every benchmark in one run, each against a baseline measured in the same run.
 * Prints human tables on stdout as it goes, then one JSON document with all figures.
 */
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { runDeliveryBench } from "./delivery.js";
import { runPostgresBench } from "./postgres.js";

const results: Record<string, unknown> = {};
results.delivery = await runDeliveryBench();

const inbound = resolve(import.meta.dirname, "inbound.ts");
if (existsSync(inbound)) {
  const mod = (await import(inbound)) as { runInboundBench?: () => Promise<unknown> };
  if (mod.runInboundBench) results.inbound = await mod.runInboundBench();
}

// Scale-out on PostgreSQL (skipped, with a message, when no PostgreSQL is reachable).
results.postgres = await runPostgresBench();

console.log(`\n${JSON.stringify(results, null, 2)}`);
process.exit(0);
