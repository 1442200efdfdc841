import type { Static } from "@sinclair/typebox";
import { errors } from "../../core/errors.js";
import { userSchemaProblem } from "../../core/json-schema.js";
import type { PigeonEngine } from "../../engine.js";
import type { EventType } from "../../store/types.js";
import { boolQuery, pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";
import {
  EVENT_TYPE_NAME_MAX_LENGTH,
  EVENT_TYPE_NAME_PATTERN,
  EventTypeIn,
  EventTypeOut,
  EventTypePatch,
  EventTypeUpdate,
  ListResponse,
} from "../schemas.js";
import { eventTypeOut, pageOut } from "../serializers.js";

type EtIn = Static<typeof EventTypeIn>;
type EtUpdate = Static<typeof EventTypeUpdate>;

/** Every schema version must be a JSON Schema that compiles, or payloads could never be checked. */
function checkSchemas(schemas: Record<string, unknown> | null | undefined): void {
  for (const [version, schema] of Object.entries(schemas ?? {})) {
    const problem =
      typeof schema === "object" && schema !== null ? userSchemaProblem(schema) : "must be an object";
    if (problem) {
      throw errors.validation([
        {
          loc: ["body", "schemas", version],
          msg: `not a valid JSON Schema: ${problem}`,
          type: "value_error.schema",
        },
      ]);
    }
  }
}

const EVENT_TYPE_NAME = new RegExp(EVENT_TYPE_NAME_PATTERN);

async function createEventType(engine: PigeonEngine, input: EtIn): Promise<EventType> {
  checkSchemas(input.schemas);
  const now = engine.clock.now();
  return engine.store.createEventType({
    name: input.name,
    description: input.description,
    archived: input.archived ?? false,
    deprecated: input.deprecated ?? false,
    featureFlag: input.featureFlag ?? null,
    schemas: input.schemas ?? null,
    createdAt: now,
    updatedAt: now,
  });
}

async function requireEventType(engine: PigeonEngine, name: string): Promise<EventType> {
  const et = await engine.store.getEventType(name);
  if (!et) throw errors.notFound("Event type", name);
  return et;
}

function applyUpdate(et: EventType, body: Partial<EtUpdate>, now: number): EventType {
  checkSchemas(body.schemas);
  return {
    ...et,
    description: body.description ?? et.description,
    archived: body.archived ?? et.archived,
    deprecated: body.deprecated ?? et.deprecated,
    featureFlag: body.featureFlag !== undefined ? body.featureFlag : et.featureFlag,
    schemas: body.schemas !== undefined ? body.schemas : et.schemas,
    updatedAt: now,
  };
}

export function eventTypeRoutes(engine: PigeonEngine): RouteSpec[] {
  const tag = "Event Type";
  return [
    {
      method: "GET",
      path: "/api/v1/event-type",
      operationId: "v1.event-type.list",
      summary: "List event types",
      tag,
      response: { status: 200, schema: ListResponse(EventTypeOut) },
      handler: async ({ query }) => ({
        status: 200,
        body: pageOut(
          await engine.store.listEventTypes(
            pageQuery(query, true),
            boolQuery(query, "include_archived", false),
          ),
          eventTypeOut,
        ),
      }),
    },
    {
      method: "POST",
      path: "/api/v1/event-type",
      operationId: "v1.event-type.create",
      summary: "Create an event type (optionally with a JSON Schema payloads must satisfy)",
      tag,
      body: EventTypeIn,
      response: { status: 201, schema: EventTypeOut },
      handler: async ({ body }) => ({
        status: 201,
        body: eventTypeOut(await createEventType(engine, body as EtIn)),
      }),
    },
    {
      method: "GET",
      path: "/api/v1/event-type/{event_type_name}",
      operationId: "v1.event-type.get",
      summary: "Get an event type",
      tag,
      response: { status: 200, schema: EventTypeOut },
      handler: async ({ params }) => ({
        status: 200,
        body: eventTypeOut(await requireEventType(engine, params.event_type_name!)),
      }),
    },
    {
      method: "PUT",
      path: "/api/v1/event-type/{event_type_name}",
      operationId: "v1.event-type.update",
      summary: "Update an event type",
      tag,
      body: EventTypeUpdate,
      response: { status: 200, schema: EventTypeOut },
      handler: async ({ params, body }) => {
        const name = params.event_type_name!;
        const et = await engine.store.getEventType(name);
        if (!et) {
          // As in Svix, PUT creates a missing event type, named by the path (201).
          if (name.length > EVENT_TYPE_NAME_MAX_LENGTH || !EVENT_TYPE_NAME.test(name))
            throw errors.validation([
              {
                loc: ["path", "event_type_name"],
                msg: `an event type name: use 1 to ${EVENT_TYPE_NAME_MAX_LENGTH} letters, digits, '-', '_', '.' or '*'`,
                type: "value_error.name",
              },
            ]);
          return {
            status: 201,
            body: eventTypeOut(await createEventType(engine, { ...(body as EtUpdate), name })),
          };
        }
        const next = applyUpdate(et, body as EtUpdate, engine.clock.now());
        return { status: 200, body: eventTypeOut(await engine.store.updateEventType(next)) };
      },
    },
    {
      method: "PATCH",
      path: "/api/v1/event-type/{event_type_name}",
      operationId: "v1.event-type.patch",
      summary: "Partially update an event type",
      tag,
      body: EventTypePatch,
      response: { status: 200, schema: EventTypeOut },
      handler: async ({ params, body }) => {
        const et = await requireEventType(engine, params.event_type_name!);
        const next = applyUpdate(et, body as Partial<EtUpdate>, engine.clock.now());
        return { status: 200, body: eventTypeOut(await engine.store.updateEventType(next)) };
      },
    },
    {
      method: "DELETE",
      path: "/api/v1/event-type/{event_type_name}",
      operationId: "v1.event-type.delete",
      summary: "Archive an event type (expunge=true deletes it)",
      tag,
      response: { status: 204 },
      handler: async ({ params, query }) => {
        const et = await requireEventType(engine, params.event_type_name!);
        await engine.store.deleteEventType(et.name, boolQuery(query, "expunge", false));
        return { status: 204 };
      },
    },
  ];
}
