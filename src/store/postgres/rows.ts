import { type ColumnCodec, createRowMapping, type Row } from "../row-mapping.js";

export { type Row, toJson } from "../row-mapping.js";

/**
 * Rows arrive either from pg directly (BIGINT as a string, JSON already parsed, BOOLEAN as
 * boolean) or through `row_to_json` (BIGINT as a number); both shapes map the same. JSON goes in
 * as text (`json` columns), so what a caller stored is what it reads back, key order included;
 * pg would turn a JS array parameter into a PostgreSQL array literal.
 */
const postgresCodec: ColumnCodec = {
  bool: (value) => value === true,
  boolToDb: (value) => value,
  json: <T>(value: unknown, fallback: T): T =>
    value === null || value === undefined ? fallback : (value as T),
  jsonOrNull: <T>(value: unknown): T | null => (value === null || value === undefined ? null : (value as T)),
};

export const {
  applicationFromRow,
  applicationToRow,
  eventTypeFromRow,
  eventTypeToRow,
  endpointFromRow,
  endpointToRow,
  messageFromRow,
  messageToRow,
  deliveryFromRow,
  deliveryToRow,
  attemptFromRow,
  attemptToRow,
  operationalEventFromRow,
} = createRowMapping(postgresCodec);

/** `INSERT INTO t (a, b) VALUES ($1, $2)` and its parameters, for a row's keys. */
export function insertQuery(table: string, row: Row): { text: string; values: unknown[] } {
  const keys = Object.keys(row);
  return {
    text: `INSERT INTO ${table} (${keys.join(", ")}) VALUES (${keys.map((_, i) => `$${i + 1}`).join(", ")})`,
    values: Object.values(row),
  };
}

/** `UPDATE t SET a = $1, b = $2 WHERE key = $3` and its parameters, for a row's keys. */
export function updateQuery(table: string, row: Row, key: string): { text: string; values: unknown[] } {
  const keys = Object.keys(row).filter((k) => k !== key);
  return {
    text: `UPDATE ${table} SET ${keys.map((k, i) => `${k} = $${i + 1}`).join(", ")} WHERE ${key} = $${keys.length + 1}`,
    values: [...keys.map((k) => row[k]), row[key]],
  };
}
