import { errors } from "../core/errors.js";
import type { PageQuery } from "../store/types.js";

/** Query-string readers that refuse bad values with a 422 naming the parameter. */

function invalid(name: string, msg: string) {
  return errors.validation([{ loc: ["query", name], msg, type: "value_error" }]);
}

/**
 * `keysMayStartWithDash`: the list's iterator is a key that may itself start with '-' (event-type
 * names), so a leading '-' cannot mark a prevIterator there: read as one, the iterator "-a" of a
 * type named "-a" asked for the first page again, and a client paging on never finished.
 */
export function pageQuery(query: URLSearchParams, keysMayStartWithDash = false): PageQuery {
  const raw = query.get("limit");
  let limit = 50;
  if (raw !== null) {
    limit = Number(raw);
    if (!Number.isInteger(limit) || limit < 1 || limit > 250)
      throw invalid("limit", "must be an integer from 1 to 250");
  }
  const iterator = query.get("iterator") ?? undefined;
  // Backwards iteration (a prevIterator, "-id") is not supported: treat it as the first page.
  return { limit, iterator: iterator?.startsWith("-") && !keysMayStartWithDash ? undefined : iterator };
}

export function dateQuery(query: URLSearchParams, name: string): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === "") return undefined;
  const ms = Date.parse(raw);
  if (Number.isNaN(ms)) throw invalid(name, "must be an RFC 3339 date-time such as 2026-01-31T12:00:00Z");
  return ms;
}

export function boolQuery(query: URLSearchParams, name: string, fallback: boolean): boolean {
  const raw = query.get(name);
  if (raw === null || raw === "") return fallback;
  if (raw === "true") return true;
  if (raw === "false") return false;
  throw invalid(name, "must be true or false");
}

export function intQuery(query: URLSearchParams, name: string, min: number, max: number): number | undefined {
  const raw = query.get(name);
  if (raw === null || raw === "") return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw invalid(name, `must be an integer from ${min} to ${max}`);
  return n;
}

export function listQuery(query: URLSearchParams, name: string): string[] | undefined {
  const values = query
    .getAll(name)
    .flatMap((v) => v.split(","))
    .filter(Boolean);
  return values.length > 0 ? values : undefined;
}
