/**
 * A reference point for bench/inbound.ts (`--reference`): about the least a durable intake can do
 * in Node. It reads the body, checks the Standard Webhooks signature, appends the request to a
 * file and answers 200 once an fdatasync covering it has returned, requests of one event-loop turn
 * sharing one sync (group commit). No index, no de-duplication, no second thread, no processing:
 * what it reaches is the ceiling for any design that syncs before it answers, on this machine.
 */
import { closeSync, fdatasync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeSecret } from "../src/signing/secrets.js";
import { verifyPayload } from "../src/signing/standard-webhooks.js";

export interface MinimalIntake {
  url: string;
  close(): Promise<void>;
}

export async function startMinimalIntake(secret: string): Promise<MinimalIntake> {
  // The same verification Pigeon's intake runs, so the two differ only in what comes after it.
  const keys = [decodeSecret(secret)];
  const dir = mkdtempSync(join(tmpdir(), "pigeon-bench-minimal-"));
  const fd = openSync(join(dir, "journal"), "a");
  let waiting: { record: Buffer; res: ServerResponse }[] = [];
  let syncing = false;

  // One write and one fdatasync for everything that arrived while the last sync ran.
  const commit = () => {
    if (syncing || waiting.length === 0) return;
    syncing = true;
    const batch = waiting;
    waiting = [];
    writeSync(fd, Buffer.concat(batch.map((b) => b.record)));
    fdatasync(fd, (error) => {
      for (const { res } of batch) {
        res.writeHead(error ? 503 : 200, { "content-length": "0" });
        res.end();
      }
      syncing = false;
      setImmediate(commit);
    });
  };

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      const id = String(req.headers["webhook-id"]);
      const headers = {
        id,
        timestamp: String(req.headers["webhook-timestamp"]),
        signature: String(req.headers["webhook-signature"]),
      };
      if (!verifyPayload(keys, headers, body).ok) {
        res.writeHead(401, { "content-length": "0" });
        res.end();
        return;
      }
      waiting.push({ record: Buffer.concat([Buffer.from(`${id}\n`), body, Buffer.from("\n")]), res });
      setImmediate(commit);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/in/minimal`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      closeSync(fd);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
