/** Messages between ThreadedInboxStore (main thread) and inbox-thread (its worker). */
import { PigeonError, type ValidationIssue } from "../../core/errors.js";
import type { InsertOutcome } from "../types.js";

export interface InboxCall {
  id: number;
  method: string;
  args: unknown[];
}

export type InboxReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: SerializedError };

/** An insert outcome as the thread sends it: a taken item's row is rebuilt on the main thread. */
export type ThreadInsertOutcome =
  | Exclude<InsertOutcome, { status: "received" }>
  | { id: string; status: "received"; newestProcessedTime?: number | null };

export interface SerializedError {
  message: string;
  name: string;
  stack?: string | undefined;
  /** SQLite's error code (SQLITE_…) or a PigeonError's code. */
  code?: string | undefined;
  /** Set for a PigeonError, which the API turns into its 4xx. */
  pigeon?: { status: number; issues?: ValidationIssue[] | undefined };
}

/**
 * Errors cross threads as plain data (a structured clone keeps neither the class nor `code`),
 * so a PigeonError (a duplicate uid's 409) still reaches the API as one.
 */
export function serializeError(error: unknown): SerializedError {
  if (!(error instanceof Error)) return { message: String(error), name: "Error" };
  const code = (error as { code?: unknown }).code;
  return {
    message: error.message,
    name: error.name,
    stack: error.stack,
    code: typeof code === "string" ? code : undefined,
    pigeon: error instanceof PigeonError ? { status: error.status, issues: error.issues } : undefined,
  };
}

export function deserializeError(data: SerializedError): Error {
  if (data.pigeon)
    return new PigeonError(data.pigeon.status, data.code ?? "error", data.message, data.pigeon.issues);
  const error = new Error(data.message) as Error & { code?: string };
  error.name = data.name;
  if (data.code !== undefined) error.code = data.code;
  if (data.stack !== undefined) error.stack = data.stack;
  return error;
}
