import type { Readable } from "node:stream";

/**
 * Read at most `limit` bytes of a response body as UTF-8, then stop. Receivers control how much
 * they send back, so past the limit the stream is destroyed: undici then drops the connection
 * instead of draining an unbounded body into memory.
 *
 * Uses 'data' events rather than `for await`: no async-iterator promise per chunk on a hot path.
 */
export function readLimited(body: Readable, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;

    const finish = (): void => {
      settled = true;
      body.off("data", onData);
      if (chunks.length === 0) resolve("");
      else if (chunks.length === 1) resolve(chunks[0]!.toString("utf8"));
      else resolve(Buffer.concat(chunks, size).toString("utf8"));
    };

    const onData = (chunk: Buffer): void => {
      const room = limit - size;
      if (chunk.length > room) {
        if (room > 0) chunks.push(chunk.subarray(0, room));
        size += Math.max(room, 0);
        finish();
        body.destroy();
        return;
      }
      chunks.push(chunk);
      size += chunk.length;
    };

    body.on("data", onData);
    body.once("end", () => {
      if (!settled) finish();
    });
    // Stays attached after we finish: destroying an unfinished undici body emits an abort error
    // that must not become an unhandled 'error' event.
    body.on("error", (err) => {
      if (settled) return;
      settled = true;
      reject(err);
    });
  });
}
