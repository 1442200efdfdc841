import { type ColumnCodec, createRowMapping, type Row } from "../row-mapping.js";

export { toJson } from "../row-mapping.js";

/** SQLite keeps booleans as 0/1 and JSON as text. */
const sqliteCodec: ColumnCodec = {
  bool: (value) => value === 1,
  boolToDb: (value) => (value ? 1 : 0),
  json: <T>(value: unknown, fallback: T): T =>
    typeof value === "string" ? (JSON.parse(value) as T) : fallback,
  jsonOrNull: <T>(value: unknown): T | null => (typeof value === "string" ? (JSON.parse(value) as T) : null),
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
} = createRowMapping(sqliteCodec);

/** `INSERT INTO t (a, b) VALUES (@a, @b)` for a row's keys. */
export function insertSql(table: string, row: Row, verb = "INSERT"): string {
  const keys = Object.keys(row);
  return `${verb} INTO ${table} (${keys.join(", ")}) VALUES (${keys.map((k) => `@${k}`).join(", ")})`;
}

/** `UPDATE t SET a = @a, b = @b WHERE key = @key` for a row's keys. */
export function updateSql(table: string, row: Row, key: string): string {
  const sets = Object.keys(row)
    .filter((k) => k !== key)
    .map((k) => `${k} = @${k}`);
  return `UPDATE ${table} SET ${sets.join(", ")} WHERE ${key} = @${key}`;
}
