import type { Static } from "@sinclair/typebox";
import { errors } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { PigeonEngine } from "../../engine.js";
import { generateSecret, isValidSecret } from "../../signing/secrets.js";
import type { Application, Endpoint } from "../../store/types.js";
import { requireApp, requireEndpoint } from "../lookups.js";
import { dateQuery, pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";
import {
  EndpointHeadersIn,
  EndpointHeadersOut,
  EndpointHeadersPatchIn,
  EndpointIn,
  EndpointOut,
  EndpointPatch,
  EndpointSecretOut,
  EndpointSecretRotateIn,
  EndpointStats,
  EndpointUpdate,
  ListResponse,
  RecoverIn,
  RecoverOut,
} from "../schemas.js";
import { endpointOut, pageOut } from "../serializers.js";

type EpIn = Static<typeof EndpointIn>;
type EpPatch = Static<typeof EndpointPatch>;

/** Headers an endpoint may not set: they would break signing, framing or the request itself. */
const RESERVED_HEADER =
  /^(host|content-length|content-type|transfer-encoding|connection|user-agent|(webhook|svix)-.*)$/i;

function checkUrl(url: string | undefined): void {
  if (url === undefined) return;
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw errors.validation([{ loc: ["body", "url"], msg: "not a valid URL", type: "value_error.url" }]);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw errors.validation([
      { loc: ["body", "url"], msg: "must be an http or https URL", type: "value_error.url" },
    ]);
  }
  if (parsed.username || parsed.password) {
    throw errors.validation([
      {
        loc: ["body", "url"],
        msg: "must not carry credentials; use endpoint headers",
        type: "value_error.url",
      },
    ]);
  }
}

/** An HTTP field name (RFC 9110 token), as the sender requires. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/**
 * What the sender (undici) refuses in a field value: NUL, CR, LF and the other control characters
 * but tab, and anything beyond U+00FF. A header it refuses would fail every delivery with `other`.
 */
const BAD_HEADER_VALUE = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * Endpoint headers are sent with every delivery, so a name or value no HTTP request can carry is
 * refused here (422) rather than accepted and failed on every attempt; NUL among them.
 */
function checkHeaders(headers: Record<string, string | null> | null | undefined): void {
  for (const [name, value] of Object.entries(headers ?? {})) {
    const problem = RESERVED_HEADER.test(name)
      ? "this header is set by Pigeon and cannot be overridden"
      : !HEADER_NAME.test(name)
        ? "must be an HTTP header name: letters, digits and !#$%&'*+-.^_`|~ only (no NUL, spaces or controls)"
        : value !== null && BAD_HEADER_VALUE.test(value)
          ? "the value must not contain NUL, CR, LF or other control characters (tab aside), nor characters beyond U+00FF"
          : undefined;
    if (problem) {
      throw errors.validation([{ loc: ["body", "headers", name], msg: problem, type: "value_error.header" }]);
    }
  }
}

function normalizeSecret(secret: string): string {
  const key = secret.startsWith("whsec_") ? secret : `whsec_${secret}`;
  if (!isValidSecret(key)) {
    throw errors.validation([
      {
        loc: ["body", "secret"],
        msg: "must be whsec_ followed by 24 to 64 base64-encoded bytes",
        type: "value_error.secret",
      },
    ]);
  }
  return key;
}

function checkUid(uid: string | null | undefined): void {
  if (uid?.startsWith("ep_"))
    throw errors.badRequest("A uid must not start with 'ep_': that prefix is for ids.", "invalid_uid");
}

/** Applies create/update/patch input; `undefined` leaves a field alone, `null` clears it. */
function applyEndpointInput(ep: Endpoint, body: Partial<EpPatch>, now: number): Endpoint {
  checkUrl(body.url);
  checkUid(body.uid);
  checkHeaders(body.headers);
  const filter = body.filterTypes !== undefined ? body.filterTypes : body.eventTypes;
  const rate = body.rateLimit !== undefined ? body.rateLimit : body.throttleRate;
  return {
    ...ep,
    url: body.url ?? ep.url,
    description: body.description ?? ep.description,
    uid: body.uid !== undefined ? body.uid : ep.uid,
    version: body.version ?? ep.version,
    disabled: body.disabled ?? ep.disabled,
    filterTypes: filter !== undefined ? filter : ep.filterTypes,
    channels: body.channels !== undefined ? body.channels : ep.channels,
    rateLimit: rate !== undefined ? rate : ep.rateLimit,
    metadata: body.metadata ?? ep.metadata,
    headers: body.headers ?? ep.headers,
    timeoutMs: body.timeoutMs !== undefined ? body.timeoutMs : ep.timeoutMs,
    method: body.method ?? ep.method,
    bodyFormat: body.bodyFormat ?? ep.bodyFormat,
    headerStyle: body.headerStyle ?? ep.headerStyle,
    // Re-enabling starts a fresh failure window, or the endpoint would be disabled again at once.
    failingSince: body.disabled === false && ep.disabled ? null : ep.failingSince,
    updatedAt: now,
  };
}

/** A new URL must prove it wants the events, just as a new endpoint does. */
function needsHandshake(
  engine: PigeonEngine,
  app: Application,
  before: Endpoint | undefined,
  after: Endpoint,
): boolean {
  if (engine.handshakeModeFor(app) === "off") return false;
  return before === undefined || before.url !== after.url;
}

export async function createEndpoint(engine: PigeonEngine, app: Application, input: EpIn): Promise<Endpoint> {
  const now = engine.clock.now();
  const required = engine.handshakeModeFor(app) === "required";
  const blank: Endpoint = {
    id: newId("ep", now),
    appId: app.id,
    uid: null,
    url: input.url,
    description: "",
    version: 1,
    disabled: false,
    filterTypes: null,
    channels: null,
    rateLimit: null,
    metadata: {},
    headers: {},
    secrets: [{ key: input.secret ? normalizeSecret(input.secret) : generateSecret(), expiresAt: null }],
    status: required ? "pending" : "active",
    challenge: null,
    verifiedAt: null,
    handshakeAttempts: 0,
    handshakeNextAt: null,
    timeoutMs: null,
    method: "POST",
    bodyFormat: "json",
    headerStyle: "webhook",
    failingSince: null,
    createdAt: now,
    updatedAt: now,
  };
  const endpoint = await engine.store.createEndpoint(applyEndpointInput(blank, input, now));
  if (needsHandshake(engine, app, undefined, endpoint)) engine.beginHandshake(app, endpoint);
  return endpoint;
}

async function saveUpdate(
  engine: PigeonEngine,
  app: Application,
  before: Endpoint,
  after: Endpoint,
): Promise<Endpoint> {
  const reverify = needsHandshake(engine, app, before, after);
  const pendingAgain = reverify && engine.handshakeModeFor(app) === "required";
  const next = pendingAgain
    ? { ...after, status: "pending" as const, verifiedAt: null, handshakeAttempts: 0 }
    : after;
  // Pending again: what is queued or in flight for the endpoint (retries included) is held in the
  // same transaction, so nothing reaches the new URL before it answers the challenge. A request
  // already on the wire goes to the URL it was claimed with; its row stays held all the same.
  const saved = await engine.store.updateEndpoint(next, { holdQueued: pendingAgain });
  if (reverify) engine.beginHandshake(app, saved);
  return saved;
}

export function endpointRoutes(engine: PigeonEngine): RouteSpec[] {
  const tag = "Endpoint";
  const base = "/api/v1/app/{app_id}/endpoint";
  const one = `${base}/{endpoint_id}`;
  const load = async (params: Record<string, string>) => {
    const app = await requireApp(engine, params.app_id!);
    return { app, endpoint: await requireEndpoint(engine, app, params.endpoint_id!) };
  };
  return [
    {
      method: "GET",
      path: base,
      operationId: "v1.endpoint.list",
      summary: "List endpoints",
      tag,
      response: { status: 200, schema: ListResponse(EndpointOut) },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        return {
          status: 200,
          body: pageOut(await engine.store.listEndpoints(app.id, pageQuery(query)), endpointOut),
        };
      },
    },
    {
      method: "POST",
      path: base,
      operationId: "v1.endpoint.create",
      summary: "Create an endpoint; with the handshake required it stays pending until it echoes a challenge",
      tag,
      body: EndpointIn,
      response: { status: 201, schema: EndpointOut },
      handler: async ({ params, body }) => {
        const app = await requireApp(engine, params.app_id!);
        return { status: 201, body: endpointOut(await createEndpoint(engine, app, body as EpIn)) };
      },
    },
    {
      method: "GET",
      path: one,
      operationId: "v1.endpoint.get",
      summary: "Get an endpoint",
      tag,
      response: { status: 200, schema: EndpointOut },
      handler: async ({ params }) => ({ status: 200, body: endpointOut((await load(params)).endpoint) }),
    },
    {
      method: "PUT",
      path: one,
      operationId: "v1.endpoint.update",
      summary: "Update an endpoint",
      tag,
      body: EndpointUpdate,
      response: { status: 200, schema: EndpointOut },
      handler: async ({ params, body }) => {
        const { app, endpoint } = await load(params);
        const input = body as Static<typeof EndpointUpdate>;
        const cleared = { filterTypes: null, channels: null, rateLimit: null, metadata: {}, ...input };
        const after = applyEndpointInput(endpoint, cleared, engine.clock.now());
        return { status: 200, body: endpointOut(await saveUpdate(engine, app, endpoint, after)) };
      },
    },
    {
      method: "PATCH",
      path: one,
      operationId: "v1.endpoint.patch",
      summary: "Partially update an endpoint",
      tag,
      body: EndpointPatch,
      response: { status: 200, schema: EndpointOut },
      handler: async ({ params, body }) => {
        const { app, endpoint } = await load(params);
        const after = applyEndpointInput(endpoint, body as EpPatch, engine.clock.now());
        return { status: 200, body: endpointOut(await saveUpdate(engine, app, endpoint, after)) };
      },
    },
    {
      method: "DELETE",
      path: one,
      operationId: "v1.endpoint.delete",
      summary: "Delete an endpoint",
      tag,
      response: { status: 204 },
      handler: async ({ params }) => {
        const { app, endpoint } = await load(params);
        await engine.store.deleteEndpoint(app.id, endpoint.id);
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: `${one}/secret`,
      operationId: "v1.endpoint.get-secret",
      summary: "Get the endpoint's current signing secret",
      tag,
      response: { status: 200, schema: EndpointSecretOut },
      handler: async ({ params }) => {
        const { endpoint } = await load(params);
        const current = endpoint.secrets.find((s) => s.expiresAt === null) ?? endpoint.secrets[0];
        return { status: 200, body: { key: current?.key ?? "" } };
      },
    },
    {
      method: "POST",
      path: `${one}/secret/rotate`,
      operationId: "v1.endpoint.rotate-secret",
      summary: "Rotate the signing secret; the old one keeps signing for the grace period (default 24 h)",
      tag,
      body: EndpointSecretRotateIn,
      response: { status: 204 },
      handler: async ({ params, body }) => {
        const { endpoint } = await load(params);
        const input = (body ?? {}) as Static<typeof EndpointSecretRotateIn>;
        const now = engine.clock.now();
        const graceMs =
          input.gracePeriodSeconds !== undefined && input.gracePeriodSeconds !== null
            ? input.gracePeriodSeconds * 1000
            : engine.config.rotationGraceMs;
        const kept = endpoint.secrets
          .filter((s) => s.expiresAt === null || s.expiresAt > now)
          .map((s) => (s.expiresAt === null ? { key: s.key, expiresAt: now + graceMs } : s))
          .filter((s) => s.expiresAt !== null && s.expiresAt > now);
        const key = input.key ? normalizeSecret(input.key) : generateSecret();
        await engine.store.updateEndpoint({
          ...endpoint,
          secrets: [{ key, expiresAt: null }, ...kept],
          updatedAt: now,
        });
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: `${one}/headers`,
      operationId: "v1.endpoint.get-headers",
      summary: "Get the endpoint's additional headers",
      tag,
      response: { status: 200, schema: EndpointHeadersOut },
      handler: async ({ params }) => ({
        status: 200,
        body: { headers: (await load(params)).endpoint.headers, sensitive: [] },
      }),
    },
    {
      method: "PUT",
      path: `${one}/headers`,
      operationId: "v1.endpoint.update-headers",
      summary: "Replace the endpoint's additional headers",
      tag,
      body: EndpointHeadersIn,
      response: { status: 204 },
      handler: async ({ params, body }) => {
        const { endpoint } = await load(params);
        const { headers } = body as Static<typeof EndpointHeadersIn>;
        checkHeaders(headers);
        await engine.store.updateEndpoint({ ...endpoint, headers, updatedAt: engine.clock.now() });
        return { status: 204 };
      },
    },
    {
      method: "PATCH",
      path: `${one}/headers`,
      operationId: "v1.endpoint.patch-headers",
      summary: "Merge into the endpoint's additional headers (null removes one)",
      tag,
      body: EndpointHeadersPatchIn,
      response: { status: 204 },
      handler: async ({ params, body }) => {
        const { endpoint } = await load(params);
        const { headers } = body as Static<typeof EndpointHeadersPatchIn>;
        checkHeaders(headers);
        const merged = { ...endpoint.headers };
        for (const [name, value] of Object.entries(headers)) {
          if (value === null) delete merged[name];
          else merged[name] = value;
        }
        await engine.store.updateEndpoint({ ...endpoint, headers: merged, updatedAt: engine.clock.now() });
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: `${one}/stats`,
      operationId: "v1.endpoint.get-stats",
      summary: "Delivery counts for the endpoint by status",
      tag,
      response: { status: 200, schema: EndpointStats },
      handler: async ({ params, query }) => {
        const { endpoint } = await load(params);
        const c = await engine.store.countDeliveriesByStatus(endpoint.id, dateQuery(query, "since"));
        return {
          status: 200,
          body: {
            success: c.succeeded,
            pending: c.pending + c.held,
            sending: c.sending,
            fail: c.failed,
            canceled: 0,
          },
        };
      },
    },
    {
      method: "POST",
      path: `${one}/recover`,
      operationId: "v1.endpoint.recover",
      summary: "Re-send every failed message since a time",
      tag,
      body: RecoverIn,
      response: { status: 202, schema: RecoverOut },
      handler: async ({ params, body }) => {
        const { endpoint } = await load(params);
        const { since } = body as Static<typeof RecoverIn>;
        const now = engine.clock.now();
        // For an endpoint pending its handshake the store writes them 'held', released on verification.
        const count = await engine.store.recoverFailedDeliveries(endpoint.id, Date.parse(since), now);
        if (count > 0) engine.dispatcher.wake();
        return {
          status: 202,
          body: {
            id: newId("op", now).replace("op_", "qtask_"),
            status: "finished",
            task: "endpoint.recover",
            updatedAt: new Date(now).toISOString(),
            recovered: count,
          },
        };
      },
    },
    {
      method: "POST",
      path: `${one}/verify`,
      operationId: "v1.endpoint.verify",
      summary: "Pigeon: run the registration handshake now and report the result",
      tag,
      response: { status: 200 },
      handler: async ({ params }) => {
        const { app, endpoint } = await load(params);
        if (engine.handshakeModeFor(app) === "off") {
          throw errors.conflict(
            "The handshake is off for this application; set its handshake to required or optional.",
            "handshake_off",
          );
        }
        const result = await engine.handshaker.verify(endpoint, {
          retry: engine.handshakeModeFor(app) === "required",
        });
        const after = await requireEndpoint(engine, app, endpoint.id);
        return { status: 200, body: { ...result, endpoint: endpointOut(after) } };
      },
    },
  ];
}
