import type { Static } from "@sinclair/typebox";
import { errors } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { PigeonEngine } from "../../engine.js";
import type { Application } from "../../store/types.js";
import { requireApp } from "../lookups.js";
import { boolQuery, pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";
import {
  ApplicationIn,
  ApplicationOut,
  ApplicationPatch,
  ListResponse,
  UID_MAX_LENGTH,
  UID_PATTERN,
} from "../schemas.js";
import { applicationOut, pageOut } from "../serializers.js";

type AppIn = Static<typeof ApplicationIn>;

function rateLimitOf(body: Partial<AppIn>): number | null | undefined {
  return body.rateLimit !== undefined ? body.rateLimit : body.throttleRate;
}

const UID = new RegExp(UID_PATTERN);

/**
 * A new application's uid taken from the path (a PUT, or a message creating its application),
 * where the schema that checks a body's uid does not reach: refused, naming `app_id`, unless it
 * is one. `alternative` tells the caller's other way out.
 */
export function checkUidFromPath(uid: string, alternative = ""): void {
  if (uid.length > UID_MAX_LENGTH || !UID.test(uid))
    throw errors.validation([
      {
        loc: ["path", "app_id"],
        msg: `the new application's uid: use 1 to ${UID_MAX_LENGTH} letters, digits, '-', '_' or '.'${alternative}`,
        type: "value_error.uid",
      },
    ]);
}

/** Every write of an application's uid (create, PUT, PATCH) refuses the prefix its ids carry. */
function refuseIdLikeUid(uid: string | null | undefined): void {
  if (uid?.startsWith("app_"))
    throw errors.badRequest("A uid must not start with 'app_': that prefix is for ids.", "invalid_uid");
}

export function applyAppInput(app: Application, body: Partial<AppIn>, now: number): Application {
  refuseIdLikeUid(body.uid);
  const rate = rateLimitOf(body);
  return {
    ...app,
    name: body.name ?? app.name,
    uid: body.uid !== undefined ? body.uid : app.uid,
    metadata: body.metadata ?? app.metadata,
    rateLimit: rate !== undefined ? rate : app.rateLimit,
    handshake: body.handshake !== undefined ? body.handshake : app.handshake,
    updatedAt: now,
  };
}

export async function createApplication(engine: PigeonEngine, body: AppIn): Promise<Application> {
  const now = engine.clock.now();
  const blank: Application = {
    id: newId("app", now),
    uid: null,
    name: body.name,
    rateLimit: null,
    metadata: {},
    handshake: null,
    createdAt: now,
    updatedAt: now,
  };
  return engine.store.createApplication(applyAppInput(blank, body, now));
}

export function applicationRoutes(engine: PigeonEngine): RouteSpec[] {
  const tag = "Application";
  return [
    {
      method: "GET",
      path: "/api/v1/app",
      operationId: "v1.application.list",
      summary: "List applications",
      tag,
      response: { status: 200, schema: ListResponse(ApplicationOut) },
      handler: async ({ query }) => ({
        status: 200,
        body: pageOut(await engine.store.listApplications(pageQuery(query)), applicationOut),
      }),
    },
    {
      method: "POST",
      path: "/api/v1/app",
      operationId: "v1.application.create",
      summary: "Create an application (get_if_exists=true returns an existing one with the same uid)",
      tag,
      body: ApplicationIn,
      response: { status: 201, schema: ApplicationOut },
      handler: async ({ body, query }) => {
        const input = body as AppIn;
        if (boolQuery(query, "get_if_exists", false) && input.uid) {
          const existing = await engine.store.getApplication(input.uid);
          if (existing) return { status: 200, body: applicationOut(existing) };
        }
        return { status: 201, body: applicationOut(await createApplication(engine, input)) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}",
      operationId: "v1.application.get",
      summary: "Get an application",
      tag,
      response: { status: 200, schema: ApplicationOut },
      handler: async ({ params }) => ({
        status: 200,
        body: applicationOut(await requireApp(engine, params.app_id!)),
      }),
    },
    {
      method: "PUT",
      path: "/api/v1/app/{app_id}",
      operationId: "v1.application.update",
      summary: "Update an application",
      tag,
      body: ApplicationIn,
      response: { status: 200, schema: ApplicationOut },
      handler: async ({ params, body }) => {
        const input = body as AppIn;
        const appId = params.app_id!;
        const app = await engine.store.getApplication(appId);
        if (!app) {
          // As in Svix, PUT creates a missing application, the path naming its uid (201); an id
          // (app_…) names one that exists or nothing.
          if (appId.startsWith("app_")) throw errors.notFound("Application", appId);
          const uid = input.uid ?? appId;
          checkUidFromPath(uid);
          return { status: 201, body: applicationOut(await createApplication(engine, { ...input, uid })) };
        }
        const next = applyAppInput(
          app,
          { ...input, metadata: input.metadata ?? {}, rateLimit: rateLimitOf(input) ?? null },
          engine.clock.now(),
        );
        return { status: 200, body: applicationOut(await engine.store.updateApplication(next)) };
      },
    },
    {
      method: "PATCH",
      path: "/api/v1/app/{app_id}",
      operationId: "v1.application.patch",
      summary: "Partially update an application",
      tag,
      body: ApplicationPatch,
      response: { status: 200, schema: ApplicationOut },
      handler: async ({ params, body }) => {
        const app = await requireApp(engine, params.app_id!);
        const next = applyAppInput(app, body as Partial<AppIn>, engine.clock.now());
        return { status: 200, body: applicationOut(await engine.store.updateApplication(next)) };
      },
    },
    {
      method: "DELETE",
      path: "/api/v1/app/{app_id}",
      operationId: "v1.application.delete",
      summary: "Delete an application with its endpoints, messages and attempts",
      tag,
      response: { status: 204 },
      handler: async ({ params }) => {
        const app = await requireApp(engine, params.app_id!);
        await engine.store.deleteApplication(app.id);
        return { status: 204 };
      },
    },
  ];
}
