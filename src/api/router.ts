import type { IncomingMessage, ServerResponse } from "node:http";
import type { TSchema } from "@sinclair/typebox";
import { errors } from "../core/errors.js";

export type Method = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** The parsed and validated JSON body (undefined for routes without one). */
  body: unknown;
  rawBody: Buffer;
}

/** What a handler returns: a status and a JSON body, or nothing when it wrote the response itself. */
export type RouteResult = { status: number; body?: unknown } | undefined;

export interface RouteSpec {
  method: Method;
  /** OpenAPI-style template: `/api/v1/app/{app_id}/msg`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** false for the handful of routes that answer without a token (health). */
  auth?: boolean;
  body?: TSchema;
  /** Documented query parameters (validated by the handler, which knows their meaning). */
  query?: Record<string, TSchema>;
  response?: { status: number; schema?: TSchema };
  handler: (ctx: RequestContext) => Promise<RouteResult> | RouteResult;
}

export interface CompiledRoute extends RouteSpec {
  pattern: RegExp;
  paramNames: string[];
}

export function compileRoute(spec: RouteSpec): CompiledRoute {
  const paramNames: string[] = [];
  const source = spec.path.replace(/[.+?^$()|[\]\\]/g, "\\$&").replace(/\{(\w+)\}/g, (_, name: string) => {
    paramNames.push(name);
    return "([^/]+)";
  });
  return { ...spec, pattern: new RegExp(`^${source}/?$`), paramNames };
}

export type RouteMatch =
  | { kind: "found"; route: CompiledRoute; params: Record<string, string> }
  | { kind: "method_not_allowed" }
  | { kind: "not_found" };

export class Router {
  private readonly routes: CompiledRoute[] = [];

  add(...specs: RouteSpec[]): this {
    for (const spec of specs) this.routes.push(compileRoute(spec));
    return this;
  }

  get all(): readonly CompiledRoute[] {
    return this.routes;
  }

  match(method: string, path: string): RouteMatch {
    let pathMatched = false;
    for (const route of this.routes) {
      const m = route.pattern.exec(path);
      if (!m) continue;
      pathMatched = true;
      if (route.method !== method) continue;
      const params: Record<string, string> = {};
      for (const [i, name] of route.paramNames.entries()) {
        const raw = m[i + 1] ?? "";
        try {
          params[name] = decodeURIComponent(raw);
        } catch {
          throw errors.badRequest(`The path segment '${raw}' is not valid percent-encoding.`, "invalid_path");
        }
        // Every path parameter names a record (id, uid, event type, eventId), and none holds NUL:
        // say so rather than look it up, which PostgreSQL cannot do with NUL in the parameter.
        if (params[name].includes("\u0000")) {
          throw errors.badRequest(
            `The path segment '${raw}' contains NUL (%00), which no id, uid or name does; remove it.`,
            "invalid_path",
          );
        }
      }
      return { kind: "found", route, params };
    }
    return pathMatched ? { kind: "method_not_allowed" } : { kind: "not_found" };
  }
}
