import type { TSchema } from "@sinclair/typebox";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import addFormatsModule from "ajv-formats";
import { boundedMemo } from "./bounded-memo.js";
import { errorMessage, errors, type ValidationIssue } from "./errors.js";

// ajv-formats is CommonJS; under NodeNext its default export arrives wrapped.
const addFormats =
  (addFormatsModule as unknown as { default?: typeof addFormatsModule }).default ?? addFormatsModule;

/** One Ajv for the API's own schemas: the same TypeBox schemas the OpenAPI document is built from. */
const ajv = new Ajv({ allErrors: true, strict: false, coerceTypes: false });
(addFormats as unknown as (a: Ajv) => void)(ajv);

const compiled = new WeakMap<TSchema, ValidateFunction>();

/**
 * The `pattern` of API strings stored as text: no NUL (U+0000), which PostgreSQL `text` columns
 * and lookup parameters cannot hold (the statement fails with `invalid byte sequence for encoding
 * "UTF8": 0x00`), and no unpaired UTF-16 surrogate (a JSON `\ud800` escape), which no UTF-8 text can
 * hold: both stores kept it as U+FFFD, so what was read back differed from what was accepted, and an
 * `eventId` holding one could never be looked up. Ajv matches patterns with the `u` flag, where a
 * surrogate pair is one code point outside this range. Refused on both backends alike.
 */
export const STORABLE_TEXT_PATTERN = "^[^\\u0000\\uD800-\\uDFFF]*$";

/** What a client is told when a query string holds NUL: the same words for bodies (below). */
export const NUL_MESSAGE = "must not contain the NUL character (U+0000)";

/** What a client is told when a body's text breaks STORABLE_TEXT_PATTERN. */
const UNSTORABLE_TEXT_MESSAGE = `${NUL_MESSAGE} or an unpaired UTF-16 surrogate (U+D800 to U+DFFF)`;

export function issuesFromAjv(list: ErrorObject[] | null | undefined, root: string): ValidationIssue[] {
  return (list ?? []).map((e) => {
    const path = e.instancePath.split("/").filter(Boolean);
    const loc: (string | number)[] = [root, ...path.map((p) => (/^\d+$/.test(p) ? Number(p) : p))];
    let msg = e.message ?? "is invalid";
    if (e.keyword === "required") {
      loc.push(String((e.params as { missingProperty?: string }).missingProperty));
      msg = "field required";
    } else if (e.keyword === "additionalProperties") {
      loc.push(String((e.params as { additionalProperty?: string }).additionalProperty));
      msg = "unknown field";
    } else if (
      e.keyword === "pattern" &&
      (e.params as { pattern?: string }).pattern === STORABLE_TEXT_PATTERN
    ) {
      return { loc, msg: UNSTORABLE_TEXT_MESSAGE, type: "value_error.nul" };
    }
    return { loc, msg, type: `value_error.${e.keyword}` };
  });
}

/**
 * Validates a request body against its schema; a mismatch is a 422 listing every problem, each
 * located under `root` ("body" for HTTP requests; the embedded API names its argument).
 */
export function validateBody<T>(schema: TSchema, value: unknown, root = "body"): T {
  let validate = compiled.get(schema);
  if (!validate) {
    validate = ajv.compile(schema);
    compiled.set(schema, validate);
  }
  if (value === undefined) {
    throw errors.validation([
      {
        loc: [root],
        msg: root === "body" ? "a JSON request body is required" : "is required",
        type: "value_error.missing",
      },
    ]);
  }
  if (!validate(value)) throw errors.validation(issuesFromAjv(validate.errors, root));
  return value as T;
}

/**
 * User-supplied event-type schemas, compiled by their JSON text, each in an Ajv of its own. Why
 * not one shared Ajv: Ajv keeps every `$id` it has compiled for its lifetime, so a schema with an
 * `$id` could never be changed (422 "already exists"), a refused schema kept its `$id` taken, and
 * two event types whose schemas shared an `$id` turned publishing to the second-compiled one into a
 * 500. A fresh Ajv costs ~3.5 ms, once per schema text; bounded, so replaced schemas do not pile up.
 */
const compileUserSchemaText = boundedMemo((text: string): ValidateFunction => {
  const own = new Ajv({ allErrors: true, strict: false });
  (addFormats as unknown as (a: Ajv) => void)(own);
  const validate = own.compile(JSON.parse(text) as object);
  // An asynchronous schema's validate returns a promise, which would pass every payload.
  if ((validate as { $async?: boolean }).$async)
    throw new Error("asynchronous schemas ($async) are not supported");
  return validate;
}, 256);

export function compileUserSchema(schema: unknown): ValidateFunction {
  return compileUserSchemaText(JSON.stringify(schema));
}

/** Checks a user-supplied JSON Schema compiles; returns a message when it does not. */
export function userSchemaProblem(schema: unknown): string | undefined {
  try {
    compileUserSchema(schema);
    return undefined;
  } catch (error) {
    return errorMessage(error);
  }
}
