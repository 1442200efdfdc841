import type { PigeonEngine } from "../../engine.js";
import { pageQuery } from "../query.js";
import type { RouteSpec } from "../router.js";

export function healthRoutes(engine: PigeonEngine): RouteSpec[] {
  return [
    {
      method: "GET",
      path: "/api/v1/health",
      operationId: "v1.health.get",
      summary: "Health check: 204 when the store answers",
      tag: "Health",
      auth: false,
      response: { status: 204 },
      handler: async () => {
        await engine.store.nextDueAt();
        return { status: 204 };
      },
    },
    {
      method: "GET",
      path: "/api/v1/health/ping",
      operationId: "v1.health.ping",
      summary: "Liveness: 200 while the process serves HTTP",
      tag: "Health",
      auth: false,
      response: { status: 200 },
      handler: () => ({ status: 200, body: { ok: true } }),
    },
    {
      method: "GET",
      path: "/api/v1/operational-event",
      operationId: "v1.operational-event.list",
      summary: "Pigeon: list operational events such as endpoint.disabled",
      tag: "Operational Event",
      response: { status: 200 },
      handler: async ({ query }) => {
        const page = await engine.store.listOperationalEvents(pageQuery(query));
        return {
          status: 200,
          body: {
            data: page.data.map((e) => ({
              id: e.id,
              type: e.type,
              data: e.data,
              timestamp: new Date(e.createdAt).toISOString(),
            })),
            iterator: page.iterator,
            prevIterator: page.prevIterator,
            done: page.done,
          },
        };
      },
    },
  ];
}
