import type { CompiledRoute } from "./router.js";
import { HttpErrorOut } from "./schemas.js";

/**
 * Builds the OpenAPI 3.1 document from the route table: the body schemas listed here are the very
 * objects the router validates with, so the document cannot describe a different API.
 */
export function buildOpenApi(routes: readonly CompiledRoute[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters: Record<string, unknown>[] = route.paramNames.map((name) => ({
      name,
      in: "path",
      required: true,
      schema: { type: "string" },
    }));
    for (const [name, schema] of Object.entries(route.query ?? {}))
      parameters.push({ name, in: "query", required: false, schema });
    const responses: Record<string, unknown> = {
      [String(route.response?.status ?? 200)]: route.response?.schema
        ? { description: "OK", content: { "application/json": { schema: route.response.schema } } }
        : { description: "OK" },
    };
    if (route.auth !== false)
      responses["401"] = {
        description: "Missing or wrong token",
        content: { "application/json": { schema: HttpErrorOut } },
      };
    responses["4XX"] = {
      description: "Client error",
      content: { "application/json": { schema: HttpErrorOut } },
    };
    const operation: Record<string, unknown> = {
      operationId: route.operationId,
      summary: route.summary,
      tags: [route.tag],
      parameters,
      responses,
    };
    if (route.auth !== false) operation.security = [{ HTTPBearer: [] }];
    if (route.body)
      operation.requestBody = { required: true, content: { "application/json": { schema: route.body } } };
    paths[route.path] = { ...(paths[route.path] ?? {}), [route.method.toLowerCase()]: operation };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Pigeon",
      version,
      description:
        "Webhook sending and receiving. Wire-compatible with the Svix v1 API; Pigeon extensions are marked 'Pigeon:'.",
    },
    components: { securitySchemes: { HTTPBearer: { type: "http", scheme: "bearer" } } },
    paths,
  };
}
