import type { AddressInfo } from "node:net";
import { createApiServer } from "../api/server.js";
import type { PigeonConfig } from "../core/config.js";
import { PigeonEngine } from "../engine.js";
import { resolveAdminToken } from "./admin-token.js";

export interface RunningServer {
  port: number;
  stop(): Promise<void>;
}

/** Starts the API and the delivery engine; resolves once the port is listening. */
export async function serve(config: Readonly<PigeonConfig>): Promise<RunningServer> {
  const admin = resolveAdminToken(config.authToken, config.dataDir);
  const engine = await PigeonEngine.create(config);
  const server = createApiServer(engine, { authToken: admin.token });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => resolve());
  });
  engine.start();
  const port = (server.address() as AddressInfo).port;
  console.log(`pigeon: listening on http://${config.host}:${port} (database ${config.databaseUrl})`);
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
