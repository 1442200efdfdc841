import type { Static } from "@sinclair/typebox";
import { createApplication as createValidatedApplication } from "../api/routes/applications.js";
import { createEndpoint as createValidatedEndpoint } from "../api/routes/endpoints.js";
import { ApplicationIn, EndpointIn } from "../api/schemas.js";
import { validateBody } from "../core/json-schema.js";
import type { PigeonEngine } from "../engine.js";
import type { Application, Endpoint } from "../store/types.js";

/**
 * The API's create operations for code that embeds Pigeon (the package's exports). The HTTP
 * routes validate their bodies against the schemas before they call the same functions; called
 * directly, nothing did, and an endpoint URL such as `ftp://…` or a name holding NUL was stored
 * as given. These check the same schemas first, so embedded input gets the API's answer: a
 * PigeonError (422 validation_error, each problem under `input`) and nothing stored.
 */
export function createApplication(
  engine: PigeonEngine,
  input: Static<typeof ApplicationIn>,
): Promise<Application> {
  return createValidatedApplication(engine, validateBody(ApplicationIn, input, "input"));
}

export function createEndpoint(
  engine: PigeonEngine,
  app: Application,
  input: Static<typeof EndpointIn>,
): Promise<Endpoint> {
  return createValidatedEndpoint(engine, app, validateBody(EndpointIn, input, "input"));
}
