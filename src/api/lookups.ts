import { errors } from "../core/errors.js";
import type { PigeonEngine } from "../engine.js";
import type { Application, Endpoint } from "../store/types.js";

export async function requireApp(engine: PigeonEngine, appId: string): Promise<Application> {
  const app = await engine.store.getApplication(appId);
  if (!app) throw errors.notFound("Application", appId);
  return app;
}

export async function requireEndpoint(
  engine: PigeonEngine,
  app: Application,
  endpointId: string,
): Promise<Endpoint> {
  const endpoint = await engine.store.getEndpoint(app.id, endpointId);
  if (!endpoint) throw errors.notFound("Endpoint", endpointId);
  return endpoint;
}
