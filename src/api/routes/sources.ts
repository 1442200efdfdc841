import type { IncomingMessage } from "node:http";
import type { Static } from "@sinclair/typebox";
import { errors } from "../../core/errors.js";
import type { PigeonEngine } from "../../engine.js";
import type { SourceInput } from "../../inbound/source-registry.js";
import type { SourceStats } from "../../inbound/store/inbox-store.js";
import { INBOX_STATUSES, type InboxItem, type InboxStatus, type Source } from "../../inbound/types.js";
import { boolQuery, pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";
import { InboxItemOut, ListResponse, SourceIn, SourceOut, SourcePatch } from "../schemas.js";

type SourceBody = Static<typeof SourceIn>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** The ingest URL as this request reached us; a proxy in front should set X-Forwarded-Proto. */
function ingestUrl(req: IncomingMessage, path: string): string {
  const forwarded = req.headers["x-forwarded-proto"];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim();
  const scheme = proto === "https" ? "https" : "http";
  return `${scheme}://${req.headers.host ?? "localhost"}${path}`;
}

export function sourceOut(source: Source, stats: SourceStats, req: IncomingMessage) {
  // The id, not the uid: a uid can be changed later, which would silently break the provider's URL.
  const path = `/in/${source.id}`;
  return {
    id: source.id,
    uid: source.uid,
    name: source.name,
    provider: source.provider,
    ingestUrl: ingestUrl(req, path),
    ingestPath: path,
    secretCount: source.secrets.length,
    options: source.options,
    stats: {
      ...stats.counts,
      verificationFailures: stats.verifyFailures,
      lastVerificationFailureAt: iso(stats.lastVerifyFailureAt),
      lastVerificationFailureCode: stats.lastVerifyFailureCode,
    },
    createdAt: new Date(source.createdAt).toISOString(),
    updatedAt: new Date(source.updatedAt).toISOString(),
  };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

export function inboxItemOut(item: InboxItem, withContent: boolean) {
  let body: string | null = null;
  let bodyBase64: string | null = null;
  if (withContent) {
    try {
      body = utf8.decode(item.body);
    } catch {
      bodyBase64 = item.body.toString("base64");
    }
  }
  return {
    id: item.id,
    sourceId: item.sourceId,
    status: item.status,
    eventId: item.eventId,
    eventType: item.eventType,
    eventTime: iso(item.eventTime),
    orderingKey: item.orderingKey,
    duplicateOf: item.duplicateOf,
    method: item.method,
    path: item.path,
    query: item.query,
    headers: item.headers,
    contentType: item.contentType,
    bodyKind: item.bodyKind,
    bodySize: item.body.length,
    ...(withContent ? { body, bodyBase64 } : {}),
    attempts: item.attempts,
    nextAttemptAt:
      item.status === "received" || item.status === "processing" ? iso(item.nextAttemptAt) : null,
    lastError: item.lastError,
    stale: item.stale || item.status === "stale",
    receivedAt: new Date(item.receivedAt).toISOString(),
    processedAt: iso(item.processedAt),
  };
}

function statusQuery(query: URLSearchParams): InboxStatus | undefined {
  const raw = query.get("status");
  if (raw === null || raw === "") return undefined;
  if (!(INBOX_STATUSES as readonly string[]).includes(raw)) {
    throw errors.validation([
      { loc: ["query", "status"], msg: `must be one of ${INBOX_STATUSES.join(", ")}`, type: "value_error" },
    ]);
  }
  return raw as InboxStatus;
}

/**
 * Sources: where webhooks from a provider arrive (`/in/{id}`), how they are verified, and how
 * their items are processed. A Pigeon extension; the same admin token as the rest of /api/v1.
 */
export function sourceRoutes(engine: PigeonEngine): RouteSpec[] {
  const inbound = engine.inbound;
  const tag = "Source";

  async function requireSource(idOrUid: string): Promise<Source> {
    const source = await inbound.sources.resolve(idOrUid);
    if (!source) throw errors.notFound("Source", idOrUid);
    return source;
  }

  /** A forward target must exist now; later deletion only fails the items (and says why). */
  async function checkForward(input: SourceInput): Promise<void> {
    const appId = input.options?.forward?.appId;
    if (appId === undefined) return;
    if (!(await engine.store.getApplication(appId))) {
      throw errors.validation([
        {
          loc: ["body", "options", "forward", "appId"],
          msg: `no application '${appId}'; create it first (POST /api/v1/app)`,
          type: "value_error",
        },
      ]);
    }
  }

  async function out(source: Source, req: IncomingMessage) {
    return sourceOut(source, await inbound.stats(source), req);
  }

  return [
    {
      method: "GET",
      path: "/api/v1/source",
      operationId: "v1.source.list",
      summary: "Pigeon: list inbound sources",
      tag,
      response: { status: 200, schema: ListResponse(SourceOut) },
      handler: async ({ query, req }) => {
        const page = await inbound.sources.list(pageQuery(query));
        const data = [];
        for (const source of page.data) data.push(await out(source, req));
        return { status: 200, body: { ...page, data } };
      },
    },
    {
      method: "POST",
      path: "/api/v1/source",
      operationId: "v1.source.create",
      summary: "Pigeon: create an inbound source; give its ingestUrl to the provider",
      tag,
      body: SourceIn,
      response: { status: 201, schema: SourceOut },
      handler: async ({ body, req }) => {
        const input = body as SourceBody as SourceInput;
        await checkForward(input);
        return { status: 201, body: await out(await inbound.sources.create(input), req) };
      },
    },
    {
      method: "GET",
      path: "/api/v1/source/{source_id}",
      operationId: "v1.source.get",
      summary: "Pigeon: get an inbound source with its counters",
      tag,
      response: { status: 200, schema: SourceOut },
      handler: async ({ params, req }) => ({
        status: 200,
        body: await out(await requireSource(params.source_id!), req),
      }),
    },
    {
      method: "PUT",
      path: "/api/v1/source/{source_id}",
      operationId: "v1.source.update",
      summary: "Pigeon: replace an inbound source's settings",
      tag,
      body: SourceIn,
      response: { status: 200, schema: SourceOut },
      handler: async ({ params, body, req }) => {
        const existing = await requireSource(params.source_id!);
        const input = body as SourceBody as SourceInput;
        await checkForward(input);
        return { status: 200, body: await out(await inbound.sources.update(existing, input), req) };
      },
    },
    {
      method: "PATCH",
      path: "/api/v1/source/{source_id}",
      operationId: "v1.source.patch",
      summary: "Pigeon: change some of an inbound source's settings (options are replaced whole)",
      tag,
      body: SourcePatch,
      response: { status: 200, schema: SourceOut },
      handler: async ({ params, body, req }) => {
        const existing = await requireSource(params.source_id!);
        const patch = body as Partial<SourceBody>;
        const input: SourceInput = {
          uid: patch.uid === undefined ? existing.uid : patch.uid,
          name: patch.name ?? existing.name,
          provider: patch.provider ?? existing.provider,
          secrets: patch.secrets ?? existing.secrets,
          options: patch.options === undefined ? existing.options : (patch.options as SourceInput["options"]),
        };
        await checkForward(input);
        return { status: 200, body: await out(await inbound.sources.update(existing, input), req) };
      },
    },
    {
      method: "DELETE",
      path: "/api/v1/source/{source_id}",
      operationId: "v1.source.delete",
      summary: "Pigeon: delete an inbound source with its inbox",
      tag,
      response: { status: 204 },
      handler: async ({ params }) => {
        await inbound.sources.remove(await requireSource(params.source_id!));
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: "/api/v1/source/{source_id}/inbox",
      operationId: "v1.source.inbox.list",
      summary: "Pigeon: list a source's inbox, newest first (status=failed, with_content=true for bodies)",
      tag,
      response: { status: 200, schema: ListResponse(InboxItemOut) },
      handler: async ({ params, query }) => {
        const source = await requireSource(params.source_id!);
        const withContent = boolQuery(query, "with_content", false);
        const page = await inbound.inbox.listItems(source.id, {
          ...pageQuery(query),
          status: statusQuery(query),
        });
        return { status: 200, body: { ...page, data: page.data.map((i) => inboxItemOut(i, withContent)) } };
      },
    },
    {
      method: "GET",
      path: "/api/v1/source/{source_id}/inbox/{item_id}",
      operationId: "v1.source.inbox.get",
      summary: "Pigeon: get one inbox item with its body",
      tag,
      response: { status: 200, schema: InboxItemOut },
      handler: async ({ params }) => {
        const source = await requireSource(params.source_id!);
        const item = await inbound.inbox.getItem(source.id, params.item_id!);
        if (!item) throw errors.notFound("Inbox item", params.item_id!);
        return { status: 200, body: inboxItemOut(item, true) };
      },
    },
    {
      method: "POST",
      path: "/api/v1/source/{source_id}/inbox/{item_id}/retry",
      operationId: "v1.source.inbox.retry",
      summary: "Pigeon: process a failed or stale item again, with fresh attempts",
      tag,
      response: { status: 202 },
      handler: async ({ params }) => {
        const source = await requireSource(params.source_id!);
        const item = await inbound.inbox.getItem(source.id, params.item_id!);
        if (!item) throw errors.notFound("Inbox item", params.item_id!);
        if (!(await inbound.inbox.requeueItem(source.id, item.id, engine.clock.now()))) {
          throw errors.conflict(
            `Item '${item.id}' is ${item.status}; only failed or stale items can be retried.`,
            "item_not_retryable",
          );
        }
        inbound.processor.wake();
        return { status: 202, body: {} };
      },
    },
  ];
}
