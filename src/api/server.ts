import { timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { errors, PigeonError } from "../core/errors.js";
import { NUL_MESSAGE, validateBody } from "../core/json-schema.js";
import type { PigeonEngine } from "../engine.js";
import { parseJsonBody, readBody, sendEmpty, sendJson, sendRawJson } from "./http.js";
import { buildOpenApi } from "./openapi.js";
import { type CompiledRoute, type RequestContext, Router } from "./router.js";
import { applicationRoutes } from "./routes/applications.js";
import { endpointRoutes } from "./routes/endpoints.js";
import { eventTypeRoutes } from "./routes/event-types.js";
import { healthRoutes } from "./routes/health.js";
import { ingestRoutes, isIngestPath } from "./routes/ingest.js";
import { messageRoutes } from "./routes/messages.js";
import { sourceRoutes } from "./routes/sources.js";

export const PIGEON_VERSION = "0.1.0";
const IDEMPOTENCY_WINDOW_MS = 24 * 60 * 60 * 1000;
/** Room for the JSON envelope around a payload of the maximum size. */
const ENVELOPE_BYTES = 64 * 1024;

export interface ApiOptions {
  authToken: string;
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith("Bearer ")) return false;
  const given = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * Query parameters are ids, names, channels, dates and numbers, none of which holds NUL (U+0000),
 * and PostgreSQL cannot compare a parameter holding it: a 422 naming the parameter, on both backends.
 */
function refuseNulInQuery(query: URLSearchParams): void {
  for (const [name, value] of query) {
    if (name.includes("\u0000") || value.includes("\u0000"))
      throw errors.validation([{ loc: ["query", name], msg: NUL_MESSAGE, type: "value_error.nul" }]);
  }
}

/** The whole HTTP API as one request listener, so it can be mounted in any node:http server. */
export function createApiHandler(engine: PigeonEngine, options: ApiOptions) {
  const router = new Router();
  router.add(
    ...healthRoutes(engine),
    ...applicationRoutes(engine),
    ...eventTypeRoutes(engine),
    ...endpointRoutes(engine),
    ...messageRoutes(engine),
    ...sourceRoutes(engine),
    ...ingestRoutes(engine),
  );
  const openApiText = JSON.stringify(buildOpenApi(router.all, PIGEON_VERSION));
  router.add({
    method: "GET",
    path: "/api/v1/openapi.json",
    operationId: "v1.openapi",
    summary: "This document",
    tag: "Health",
    auth: false,
    handler: ({ res }) => {
      sendRawJson(res, 200, openApiText);
      return undefined;
    },
  });
  const bodyLimit = engine.config.maxPayloadBytes + ENVELOPE_BYTES;
  /**
   * Requests with an Idempotency-Key being handled now, by scope and key: a second request with the
   * same key waits for the first and then replays its stored answer. Without this, a client's retry
   * arriving while the first attempt was still being handled (the usual timeout-and-retry) passed
   * the lookup too, and created the message again. Within this process only: API processes sharing
   * a PostgreSQL database can still race each other here.
   */
  const idempotentInFlight = new Map<string, Promise<void>>();

  async function run(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://pigeon.invalid");
    } catch {
      // An absolute-form target that is no URL (`GET http://[zz/ …`): the client's mistake.
      throw errors.badRequest("The request target is not a valid URL or path.", "invalid_path");
    }
    // HEAD is GET without the body (node:http leaves the body out), as Svix's health check has it.
    const method = req.method === "HEAD" ? "GET" : (req.method ?? "GET");
    const match = router.match(method, url.pathname);
    if (match.kind === "not_found") throw new PigeonError(404, "not_found", `No route for ${url.pathname}.`);
    if (match.kind === "method_not_allowed") throw errors.methodNotAllowed(req.method ?? "");
    const route: CompiledRoute = match.route;
    if (route.auth !== false && !tokenMatches(req.headers.authorization, options.authToken))
      throw errors.unauthorized();
    refuseNulInQuery(url.searchParams);

    const idempotencyKey = req.method === "POST" ? req.headers["idempotency-key"] : undefined;
    const scope = `${url.pathname}`;
    if (typeof idempotencyKey !== "string" || idempotencyKey.length === 0) {
      await handle(req, res, route, url, match.params, undefined, scope);
      return;
    }
    const slot = `${scope}\u0000${idempotencyKey}`;
    for (let running = idempotentInFlight.get(slot); running; running = idempotentInFlight.get(slot))
      await running;
    let finished: () => void = () => {};
    idempotentInFlight.set(
      slot,
      new Promise<void>((resolve) => {
        finished = resolve;
      }),
    );
    try {
      await handle(req, res, route, url, match.params, idempotencyKey, scope);
    } finally {
      idempotentInFlight.delete(slot);
      finished();
    }
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    route: CompiledRoute,
    url: URL,
    params: Record<string, string>,
    idempotencyKey: string | undefined,
    scope: string,
  ): Promise<void> {
    if (idempotencyKey !== undefined) {
      const stored = await engine.store.getIdempotentResponse(
        scope,
        idempotencyKey,
        engine.clock.now() - IDEMPOTENCY_WINDOW_MS,
      );
      if (stored) {
        req.resume();
        if (stored.body === "") sendEmpty(res, stored.status);
        else sendRawJson(res, stored.status, stored.body);
        return;
      }
    }

    let rawBody: Buffer = Buffer.alloc(0);
    let body: unknown;
    if (route.body) {
      const type = req.headers["content-type"] ?? "application/json";
      rawBody = await readBody(req, bodyLimit);
      if (rawBody.length > 0 && !/json/i.test(type)) {
        throw errors.unsupportedMediaType(`Send JSON with 'Content-Type: application/json' (got '${type}').`);
      }
      body = validateBody(route.body, parseJsonBody(rawBody));
    } else {
      req.resume();
    }
    const ctx: RequestContext = { req, res, params, query: url.searchParams, body, rawBody };
    const result = await route.handler(ctx);
    if (!result) return;
    const text = result.body === undefined ? "" : JSON.stringify(result.body);
    if (idempotencyKey !== undefined && result.status < 300) {
      await engine.store.putIdempotentResponse(
        scope,
        idempotencyKey,
        { status: result.status, body: text },
        engine.clock.now(),
      );
    }
    if (text === "") sendEmpty(res, result.status);
    else sendRawJson(res, result.status, text);
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    // Webhooks from providers: no admin token, raw body to the verifier, group-committed inbox.
    if (isIngestPath(req.url)) {
      engine.inbound.listener(req, res);
      return;
    }
    run(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (error instanceof PigeonError) {
        sendJson(res, error.status, error.toBody());
      } else {
        console.error("pigeon: unexpected error serving", req.method, req.url, error);
        sendJson(res, 500, {
          code: "internal_error",
          detail: "Internal error; the server log has the details.",
        });
      }
      // A refused upload may still be arriving; drain it so the connection can answer.
      req.resume();
    });
  };
}

export function createApiServer(engine: PigeonEngine, options: ApiOptions): Server {
  const server = createServer(createApiHandler(engine, options));
  server.keepAliveTimeout = 65_000;
  return server;
}
