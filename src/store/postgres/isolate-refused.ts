/** SQLSTATE class 22, data exception: a value PostgreSQL refuses, whenever it is sent. */
export function isDataException(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === "string" && code.startsWith("22");
}

/**
 * Records `items` with `record` (one statement or transaction per call) so that a value PostgreSQL
 * refuses costs only the record it is in. Why: a batch that fails is tried again with whatever
 * came since, so one refused value failed every later batch too. When a batch fails with a data
 * exception, halving finds the items that cause it and the rest are recorded; each refused item
 * goes to `refused` alone, in order (which may record a reduced form of it). Any other error (a
 * lost connection, a deadlock) is thrown as before: the whole batch is tried again later. Halves
 * are recorded in order, so an item listed twice still ends in its last state.
 */
export async function isolateRefused<T>(
  items: T[],
  record: (batch: T[]) => Promise<void>,
  refused: (item: T, error: unknown) => Promise<void>,
): Promise<void> {
  try {
    await record(items);
  } catch (error) {
    if (!isDataException(error)) throw error;
    if (items.length === 1) {
      await refused(items[0]!, error);
      return;
    }
    const middle = Math.ceil(items.length / 2);
    await isolateRefused(items.slice(0, middle), record, refused);
    await isolateRefused(items.slice(middle), record, refused);
  }
}
