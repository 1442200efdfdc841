import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createApiServer } from "../api/server.js";
import type { PigeonConfig } from "../core/config.js";
import { errorMessage } from "../core/errors.js";
import { PigeonEngine } from "../engine.js";
import { openStore } from "../store/open-store.js";
import { resolveAdminToken } from "./admin-token.js";

export interface RunningServer {
  port: number;
  stop(): Promise<void>;
}

/** Starts the API and the delivery engine; resolves once the port is listening. */
export async function serve(config: Readonly<PigeonConfig>): Promise<RunningServer> {
  const admin = resolveAdminToken(config.authToken, config.dataDir);
  const store = await openStore(config.databaseUrl).catch((error: unknown) => {
    throw new StartError(
      `cannot open the database ${redact(config.databaseUrl)} (--database or PIGEON_DATABASE_URL): ${errorMessage(error)}`,
    );
  });
  const engine = await PigeonEngine.create(config, { store });
  // A worker serves only its health check, so orchestrators can probe it; the API lives on api nodes.
  const server =
    config.role === "worker"
      ? createHealthServer(engine)
      : createApiServer(engine, { authToken: admin.token });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  }).catch(async (error: unknown) => {
    await engine.stop().catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE")
      throw new StartError(
        `port ${config.port} on ${config.host} is already in use: choose another with --port (or PIGEON_PORT)`,
      );
    if (code === "EADDRNOTAVAIL")
      throw new StartError(`${config.host} is not an address of this machine: fix --host (or PIGEON_HOST)`);
    throw error;
  });
  if (config.role !== "api") engine.start();
  const port = (server.address() as AddressInfo).port;
  console.log(
    `pigeon: listening on http://${config.host}:${port} (role ${config.role}, database ${redact(config.databaseUrl)})`,
  );
  if (admin.generated) {
    console.log(
      `pigeon: generated an admin token (shown once; stored in ${admin.path}):\n\n  ${admin.token}\n`,
    );
  }
  return {
    port,
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      await engine.stop();
    },
  };
}

function createHealthServer(engine: PigeonEngine): Server {
  return createServer((req, res) => {
    if (req.url?.startsWith("/api/v1/health")) {
      engine.store.nextDueAt().then(
        () => {
          res.writeHead(204);
          res.end();
        },
        () => {
          res.writeHead(503);
          res.end();
        },
      );
      return;
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(
      JSON.stringify({ code: "not_found", detail: "This is a worker: it serves only /api/v1/health." }),
    );
  });
}

/** Why `pigeon serve` could not start, in words that name the setting to fix. */
export class StartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StartError";
  }
}

/** Database URLs may carry a password; never print it. */
function redact(url: string): string {
  return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
}
