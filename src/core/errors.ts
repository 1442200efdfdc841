/**
 * One error type that knows its HTTP response. Every error a client can cause is a
 * PigeonError with a stable code; the API's single error handler maps it to `{code, detail}`.
 * Anything else reaching the handler is a bug and becomes a 500.
 */
export interface ValidationIssue {
  loc: (string | number)[];
  msg: string;
  type: string;
}

export class PigeonError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly issues?: ValidationIssue[],
  ) {
    super(message);
    this.name = "PigeonError";
  }

  toBody(): { code: string; detail: string | ValidationIssue[] } {
    // Svix answers 422 with `detail` as a list of {loc, msg, type}; its SDKs parse that shape.
    if (this.status === 422 && this.issues) return { code: this.code, detail: this.issues };
    return { code: this.code, detail: this.message };
  }
}

export const errors = {
  badRequest: (message: string, code = "bad_request") => new PigeonError(400, code, message),
  unauthorized: (
    message = "Missing or invalid Authorization header: send 'Authorization: Bearer <token>'.",
  ) => new PigeonError(401, "authentication_failed", message),
  forbidden: (message: string) => new PigeonError(403, "forbidden", message),
  notFound: (what: string, id: string) => new PigeonError(404, "not_found", `${what} '${id}' was not found.`),
  conflict: (message: string, code = "conflict") => new PigeonError(409, code, message),
  payloadTooLarge: (limit: number, what = "The request body") =>
    new PigeonError(413, "payload_too_large", `${what} is larger than the limit of ${limit} bytes.`),
  validation: (issues: ValidationIssue[]) =>
    new PigeonError(
      422,
      "validation_error",
      issues.map((i) => `${i.loc.join(".")}: ${i.msg}`).join("; "),
      issues,
    ),
  unsupportedMediaType: (message: string) => new PigeonError(415, "unsupported_media_type", message),
  methodNotAllowed: (method: string) =>
    new PigeonError(405, "method_not_allowed", `Method ${method} is not allowed on this path.`),
};

/** What went wrong, as text: an Error's message, or anything else thrown as a string. */
export function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
