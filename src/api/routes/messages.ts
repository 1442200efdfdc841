import type { Static } from "@sinclair/typebox";
import { errors } from "../../core/errors.js";
import { newId } from "../../core/ids.js";
import type { PigeonEngine } from "../../engine.js";
import type { Application } from "../../store/types.js";
import { requireApp, requireEndpoint } from "../lookups.js";
import { boolQuery, dateQuery, intQuery, listQuery, pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";
import { ListResponse, MessageAttemptOut, MessageIn, MessageOut } from "../schemas.js";
import { attemptOut, messageOut, messageOutJson, pageOut } from "../serializers.js";
import { checkUidFromPath, createApplication } from "./applications.js";

type MsgIn = Static<typeof MessageIn>;

/**
 * Arrays and objects nested deeper than this in a payload are refused (422). Serialising the payload
 * again (to store, sign and send it) recurses once per level: a 10 KB body of 5,000 nested arrays
 * overflowed the stack there, a 500. Real webhook payloads nest a few levels.
 */
export const MAX_PAYLOAD_DEPTH = 256;

function tooDeep(detail: string) {
  return errors.validation([{ loc: ["body", "payload"], msg: detail, type: "value_error.nesting" }]);
}

/** The deepest nesting of arrays and objects in JSON text (brackets inside strings do not count). */
function jsonDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      // A backslash escapes the next character; a quote ends the string.
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) deepest = Math.max(deepest, ++depth);
    else if (c === 0x7d || c === 0x5d) depth--;
  }
  return deepest;
}

/**
 * A payload larger than PIGEON_MAX_PAYLOAD_BYTES (as JSON) is refused with a 413, one nested deeper
 * than MAX_PAYLOAD_DEPTH with a 422.
 */
export function checkPayloadSize(engine: PigeonEngine, payload: unknown): void {
  let text: string;
  try {
    text = JSON.stringify(payload);
  } catch (error) {
    if (error instanceof RangeError)
      throw tooDeep(
        `nested too deeply to serialise: use at most ${MAX_PAYLOAD_DEPTH} levels of arrays and objects`,
      );
    throw error;
  }
  if (Buffer.byteLength(text) > engine.config.maxPayloadBytes)
    throw errors.payloadTooLarge(
      engine.config.maxPayloadBytes,
      "The message payload (as JSON; PIGEON_MAX_PAYLOAD_BYTES)",
    );
  const depth = jsonDepth(text);
  if (depth > MAX_PAYLOAD_DEPTH)
    throw tooDeep(
      `nested ${depth} levels deep: use at most ${MAX_PAYLOAD_DEPTH} levels of arrays and objects`,
    );
}

/**
 * Svix lets a message create its application on the fly when `application` is given; without a
 * uid of its own the application takes the path's app_id as its uid, which must then be one (the
 * body's uid is checked by the schema, the path's was not: `a b!` became a uid no other route takes).
 */
async function createAppForMessage(engine: PigeonEngine, appId: string, input: MsgIn): Promise<Application> {
  if (!input.application) throw errors.notFound("Application", appId);
  // Created by an earlier send with its own uid (not the path's): that application is the one
  // meant, as Svix ignores `application` once the application exists. The retry of such a send
  // was a 409 "uid already exists" before.
  if (input.application.uid) {
    const existing = await engine.store.getApplication(input.application.uid);
    if (existing) return existing;
  }
  const uid = input.application.uid ?? appId;
  checkUidFromPath(uid, ", or give application.uid");
  return createApplication(engine, { ...input.application, uid });
}

export function messageRoutes(engine: PigeonEngine): RouteSpec[] {
  const tag = "Message";
  return [
    {
      method: "POST",
      path: "/api/v1/app/{app_id}/msg",
      operationId: "v1.message.create",
      summary: "Send a message to every subscribed endpoint (durable once this answers 202)",
      tag,
      body: MessageIn,
      response: { status: 202, schema: MessageOut },
      handler: async ({ params, body, query }) => {
        const input = body as MsgIn;
        // Read before publishing: a bad value refused after it would leave the message sent.
        const withContent = boolQuery(query, "with_content", true);
        checkPayloadSize(engine, input.payload);
        // The application, event type and endpoints in one read (one round trip on PostgreSQL).
        const loaded = await engine.store.loadPublishContext(params.app_id!, input.eventType);
        const message = loaded.app
          ? await engine.publisher.publish(loaded.app, input, loaded)
          : await engine.publisher.publish(await createAppForMessage(engine, params.app_id!, input), input);
        return {
          status: 202,
          body: JSON.parse(messageOutJson(message, withContent)),
        };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/msg",
      operationId: "v1.message.list",
      summary: "List messages, newest first",
      tag,
      response: { status: 200, schema: ListResponse(MessageOut) },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        const page = await engine.store.listMessages(app.id, {
          ...pageQuery(query),
          eventTypes: listQuery(query, "event_types"),
          channel: query.get("channel") ?? undefined,
          before: dateQuery(query, "before"),
          after: dateQuery(query, "after"),
        });
        const withContent = boolQuery(query, "with_content", true);
        return { status: 200, body: pageOut(page, (m) => messageOut(m, withContent)) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/msg/{msg_id}",
      operationId: "v1.message.get",
      summary: "Get a message by id or eventId",
      tag,
      response: { status: 200, schema: MessageOut },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        const message = await engine.store.getMessage(app.id, params.msg_id!);
        if (!message) throw errors.notFound("Message", params.msg_id!);
        return { status: 200, body: messageOut(message, boolQuery(query, "with_content", true)) };
      },
    },
    {
      method: "POST",
      path: "/api/v1/app/{app_id}/msg/{msg_id}/endpoint/{endpoint_id}/resend",
      operationId: "v1.message-attempt.resend",
      summary: "Send a message to an endpoint again",
      tag: "Message Attempt",
      response: { status: 202 },
      handler: async ({ params }) => {
        const app = await requireApp(engine, params.app_id!);
        const message = await engine.store.getMessage(app.id, params.msg_id!);
        if (!message) throw errors.notFound("Message", params.msg_id!);
        const endpoint = await requireEndpoint(engine, app, params.endpoint_id!);
        if (endpoint.disabled)
          throw errors.conflict("The endpoint is disabled; enable it before resending.", "endpoint_disabled");
        const now = engine.clock.now();
        const existing = await engine.store.getDelivery(message.id, endpoint.id);
        // Queued as 'held' instead while the endpoint is pending its handshake: the store decides
        // from the endpoint as it is at the write, not from the read above (a URL change may be
        // committing meanwhile).
        await engine.store.requeueDelivery(
          existing ?? {
            id: newId("dlv", now),
            msgId: message.id,
            endpointId: endpoint.id,
            appId: app.id,
            status: "pending",
            attempts: 0,
            nextAttemptAt: now,
            manual: true,
            lastError: null,
            createdAt: now,
            updatedAt: now,
          },
          now,
        );
        engine.dispatcher.wake();
        // The svix client parses an (empty) JSON object here.
        return { status: 202, body: {} };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/attempt/msg/{msg_id}",
      operationId: "v1.message-attempt.list-by-msg",
      summary: "List a message's attempts, newest first",
      tag: "Message Attempt",
      response: { status: 200, schema: ListResponse(MessageAttemptOut) },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        const message = await engine.store.getMessage(app.id, params.msg_id!);
        if (!message) throw errors.notFound("Message", params.msg_id!);
        const endpointId = query.get("endpoint_id") ?? undefined;
        const page = await engine.store.listAttemptsByMessage(app.id, message.id, {
          ...pageQuery(query),
          status: intQuery(query, "status", 0, 3),
          endpointId: endpointId ? (await requireEndpoint(engine, app, endpointId)).id : undefined,
          before: dateQuery(query, "before"),
          after: dateQuery(query, "after"),
        });
        return { status: 200, body: pageOut(page, attemptOut) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/attempt/endpoint/{endpoint_id}",
      operationId: "v1.message-attempt.list-by-endpoint",
      summary: "List an endpoint's attempts, newest first",
      tag: "Message Attempt",
      response: { status: 200, schema: ListResponse(MessageAttemptOut) },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        const endpoint = await requireEndpoint(engine, app, params.endpoint_id!);
        const page = await engine.store.listAttemptsByEndpoint(app.id, endpoint.id, {
          ...pageQuery(query),
          status: intQuery(query, "status", 0, 3),
          before: dateQuery(query, "before"),
          after: dateQuery(query, "after"),
        });
        return { status: 200, body: pageOut(page, attemptOut) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/msg/{msg_id}/attempt/{attempt_id}",
      operationId: "v1.message-attempt.get",
      summary: "Get one attempt",
      tag: "Message Attempt",
      response: { status: 200, schema: MessageAttemptOut },
      handler: async ({ params }) => {
        const app = await requireApp(engine, params.app_id!);
        const message = await engine.store.getMessage(app.id, params.msg_id!);
        if (!message) throw errors.notFound("Message", params.msg_id!);
        const attempt = await engine.store.getAttempt(message.id, params.attempt_id!);
        if (!attempt) throw errors.notFound("Attempt", params.attempt_id!);
        return { status: 200, body: attemptOut(attempt) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/app/{app_id}/endpoint/{endpoint_id}/msg",
      operationId: "v1.message-attempt.list-attempted-messages",
      summary: "List the messages sent to an endpoint",
      tag: "Message Attempt",
      response: { status: 200, schema: ListResponse(MessageOut) },
      handler: async ({ params, query }) => {
        const app = await requireApp(engine, params.app_id!);
        const endpoint = await requireEndpoint(engine, app, params.endpoint_id!);
        const page = await engine.store.listMessagesForEndpoint(app.id, endpoint.id, {
          ...pageQuery(query),
          channel: query.get("channel") ?? undefined,
          before: dateQuery(query, "before"),
          after: dateQuery(query, "after"),
        });
        return { status: 200, body: pageOut(page, (m) => messageOut(m)) };
      },
    },
  ];
}
