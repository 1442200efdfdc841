#!/usr/bin/env node
import { Command, InvalidArgumentError } from "commander";
import { ConfigError, loadConfig, type PigeonRole } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { serve } from "./serve.js";

function portOption(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError("--port takes an integer from 0 to 65535.");
  }
  return port;
}

function roleOption(value: string): PigeonRole {
  if (value !== "api" && value !== "worker" && value !== "all") {
    throw new InvalidArgumentError("--role takes api, worker or all.");
  }
  return value;
}

const program = new Command("pigeon").description("Pigeon: send and receive webhooks").version("0.1.0");

program
  .command("serve")
  .description("Run the API server and the delivery engine (settings come from PIGEON_* variables)")
  .option("--port <port>", "port to listen on (overrides PIGEON_PORT)", portOption)
  .option("--host <host>", "address to bind (overrides PIGEON_HOST)")
  .option("--database <url>", "SQLite path or postgres:// URL (overrides PIGEON_DATABASE_URL)")
  .option("--role <role>", "api, worker or all (overrides PIGEON_ROLE)", roleOption)
  .action(async (opts: { port?: number; host?: string; database?: string; role?: PigeonRole }) => {
    let config: ReturnType<typeof loadConfig>;
    try {
      const overrides: Parameters<typeof loadConfig>[1] = {};
      if (opts.port !== undefined) overrides.port = opts.port;
      if (opts.host !== undefined) overrides.host = opts.host;
      if (opts.database !== undefined) overrides.databaseUrl = opts.database;
      if (opts.role !== undefined) overrides.role = opts.role;
      config = loadConfig(process.env, overrides);
    } catch (error) {
      if (error instanceof ConfigError) {
        console.error(`pigeon: ${error.message}`);
        process.exit(2);
      }
      throw error;
    }
    let running: Awaited<ReturnType<typeof serve>>;
    try {
      running = await serve(config);
    } catch (error) {
      console.error(`pigeon: could not start: ${errorMessage(error)}`);
      process.exit(1);
    }
    let stopping = false;
    const shutdown = (signal: string) => {
      if (stopping) return;
      stopping = true;
      console.log(`pigeon: ${signal} received, finishing in-flight deliveries`);
      running.stop().then(
        () => process.exit(0),
        () => process.exit(1),
      );
    };
    process.on("SIGTERM", () => shutdown("SIGTERM"));
    process.on("SIGINT", () => shutdown("SIGINT"));
  });

await program.parseAsync(process.argv);
