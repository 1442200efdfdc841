import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { createApiHandler } from "../../src/api/server.js";
import { loadConfig } from "../../src/core/config.js";
import { PigeonError } from "../../src/core/errors.js";
import { createApplication, createEndpoint } from "../../src/embedded/admin.js";
import { SqliteOutbox } from "../../src/embedded/outbox.js";
import { PigeonEngine } from "../../src/engine.js";
import { isValidSecret } from "../../src/signing/secrets.js";
import { EmployeesRepo, PUBLISHER_APP } from "./employees-repo.js";
import { employeesPage } from "./page.js";
import { checkEmployee } from "./validation.js";

export interface EmployeesAppOptions {
  port: number;
  dataDir: string;
  /** Banks present this to register their webhooks. */
  registrationToken: string;
  /** Operators use this for Pigeon's own API under /api/v1. */
  adminToken: string;
}

const EMPLOYEE_SCHEMA = {
  type: "object",
  required: ["data"],
  properties: {
    data: {
      type: "object",
      required: ["id", "name", "email", "department", "startDate"],
      properties: { id: { type: "integer" }, name: { type: "string" }, email: { type: "string" } },
    },
  },
};

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new PigeonError(413, "payload_too_large", "The body is larger than 64 KiB.");
    chunks.push(chunk as Buffer);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString() || "null");
  } catch {
    throw new PigeonError(400, "invalid_json", "The body is not valid JSON.");
  }
}

/**
 * The Employee Management application: employees CRUD, a web page, and the webhook registration
 * API banks call. It embeds Pigeon on its own SQLite file and publishes through the outbox.
 */
export async function startEmployeesApp(
  options: EmployeesAppOptions,
): Promise<{ server: Server; port: number; stop(): Promise<void> }> {
  const config = loadConfig({
    PIGEON_DATA_DIR: options.dataDir,
    PIGEON_AUTH_TOKEN: options.adminToken,
    // The demo's banks run on this machine; a real deployment leaves loopback blocked.
    PIGEON_ALLOWED_NETWORKS: "127.0.0.0/8,::1/128",
    PIGEON_HANDSHAKE: "required",
    PIGEON_RETRY_SCHEDULE: process.env.PIGEON_RETRY_SCHEDULE ?? "1s,2s,5s,10s,30s,1m,5m,30m",
    PIGEON_REQUEST_TIMEOUT: "5s",
    PIGEON_POLL_INTERVAL: "250ms",
  });
  const engine = await PigeonEngine.create(config);
  const outbox = new SqliteOutbox(engine);
  const repo = new EmployeesRepo(outbox);
  if (!(await engine.store.getApplication(PUBLISHER_APP))) {
    await createApplication(engine, {
      name: "Employee Management",
      uid: PUBLISHER_APP,
      handshake: "required",
    });
  }
  for (const type of ["employee.created", "employee.updated", "employee.deleted"]) {
    if (!(await engine.store.getEventType(type))) {
      const now = Date.now();
      await engine.store.createEventType({
        name: type,
        description: `An employee was ${type.split(".")[1]}`,
        schemas: { "1": EMPLOYEE_SCHEMA },
        archived: false,
        deprecated: false,
        featureFlag: null,
        createdAt: now,
        updatedAt: now,
      });
    }
  }
  const pigeonApi = createApiHandler(engine, { authToken: options.adminToken });

  const routes = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = req.method ?? "GET";
    const idMatch = /^\/employees\/(\d+)$/.exec(url.pathname);
    if (method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(employeesPage());
    } else if (method === "GET" && url.pathname === "/employees") {
      json(res, 200, repo.list());
    } else if (method === "POST" && url.pathname === "/employees") {
      const checked = checkEmployee(await readJson(req));
      if (!checked.ok) return json(res, 422, { code: "validation_error", detail: checked.detail });
      try {
        json(res, 201, repo.create(checked.value));
      } catch (error) {
        if (String(error).includes("UNIQUE")) {
          return json(res, 409, {
            code: "duplicate_email",
            detail: `An employee with email ${checked.value.email} exists.`,
          });
        }
        throw error;
      }
    } else if (method === "PUT" && idMatch) {
      const checked = checkEmployee(await readJson(req));
      if (!checked.ok) return json(res, 422, { code: "validation_error", detail: checked.detail });
      const employee = repo.update(Number(idMatch[1]), checked.value);
      if (!employee)
        return json(res, 404, { code: "not_found", detail: `Employee ${idMatch[1]} was not found.` });
      json(res, 200, employee);
    } else if (method === "DELETE" && idMatch) {
      if (!repo.delete(Number(idMatch[1])))
        return json(res, 404, { code: "not_found", detail: `Employee ${idMatch[1]} was not found.` });
      res.writeHead(204);
      res.end();
    } else if (method === "POST" && url.pathname === "/webhooks/register") {
      if (req.headers.authorization !== `Bearer ${options.registrationToken}`) {
        return json(res, 401, {
          code: "authentication_failed",
          detail: "Send 'Authorization: Bearer <registration token>'.",
        });
      }
      json(res, 200, await register(engine, await readJson(req)));
    } else {
      json(res, 404, { code: "not_found", detail: `No route for ${method} ${url.pathname}.` });
    }
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://employees.invalid");
    if (url.pathname.startsWith("/api/v1/")) return pigeonApi(req, res);
    routes(req, res, url).catch((error: unknown) => {
      if (error instanceof PigeonError) return json(res, error.status, error.toBody());
      console.error("employees:", error);
      json(res, 500, { code: "internal_error", detail: "Internal error." });
    });
  });
  await new Promise<void>((resolve) => server.listen(options.port, "127.0.0.1", resolve));
  engine.start();
  return {
    server,
    port: (server.address() as AddressInfo).port,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await engine.stop();
    },
  };
}

/**
 * A bank registers (or re-registers, on every start) its webhook URL with its own secret, so it can
 * check the signed handshake that follows at once. The uid makes registration idempotent.
 */
async function register(engine: PigeonEngine, body: unknown) {
  const b = (body ?? {}) as Record<string, unknown>;
  if (typeof b.url !== "string" || typeof b.uid !== "string" || typeof b.secret !== "string") {
    throw new PigeonError(
      422,
      "validation_error",
      "Send {url, uid, secret, filterTypes?}: url, uid and secret are required strings.",
    );
  }
  const filterTypes = Array.isArray(b.filterTypes) ? (b.filterTypes as string[]) : ["employee.*"];
  const app = (await engine.store.getApplication(PUBLISHER_APP))!;
  const existing = await engine.store.getEndpoint(app.id, b.uid);
  if (existing) {
    if (!isValidSecret(b.secret))
      throw new PigeonError(422, "validation_error", "'secret' must be whsec_ followed by base64.");
    // Keep the endpoint (and its delivery history); a new URL must pass the handshake again.
    const urlChanged = existing.url !== b.url;
    const updated = await engine.store.updateEndpoint({
      ...existing,
      url: b.url,
      filterTypes,
      secrets: [{ key: b.secret, expiresAt: null }],
      status: urlChanged ? "pending" : existing.status,
      updatedAt: Date.now(),
    });
    if (updated.status === "pending") engine.beginHandshake(app, updated);
    return { endpointId: updated.id, status: updated.status };
  }
  const endpoint = await createEndpoint(engine, app, {
    url: b.url,
    uid: b.uid,
    secret: b.secret,
    filterTypes,
  });
  return { endpointId: endpoint.id, status: endpoint.status };
}
