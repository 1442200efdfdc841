import type { ErrorObject } from "ajv";
import type { ValidationIssue } from "../core/errors.js";
import { compileUserSchema, issuesFromAjv } from "../core/json-schema.js";
import type { EventType } from "../store/types.js";

/** Version "1" of an event type's schemas is the contract payloads are held to, as in Svix. */
export function validatePayloadAgainstEventType(
  eventType: EventType,
  payload: unknown,
): ErrorObject[] | undefined {
  const schema = eventType.schemas?.["1"];
  if (!schema || typeof schema !== "object") return undefined;
  const validate = compileUserSchema(schema);
  return validate(payload) ? undefined : (validate.errors ?? []);
}

export function issuesFromAjvLike(list: ErrorObject[]): ValidationIssue[] {
  return issuesFromAjv(list, "body").map((issue) => ({
    ...issue,
    loc: ["body", "payload", ...issue.loc.slice(1)],
  }));
}
