import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface ReceivedRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Buffer;
  receivedAt: number;
}

export type SinkBehaviour = (req: ReceivedRequest, res: ServerResponse) => void;

/** A real node:http server on 127.0.0.1 that records every request and answers as told. */
export class Sink {
  readonly received: ReceivedRequest[] = [];
  behaviour: SinkBehaviour = (_req, res) => {
    res.writeHead(200, { "content-type": "text/plain" });
    res.end("ok");
  };
  private waiters: { count: number; resolve: () => void }[] = [];
  /** Kept from listen: a retry can still arrive (and ask for `url()`) while the server closes. */
  private listenPort = 0;
  private constructor(private readonly server: Server) {}

  static async start(behaviour?: SinkBehaviour): Promise<Sink> {
    let sink: Sink | undefined;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      // Arrival is when the request line and headers are in, not when the body is done.
      const arrivedAt = Date.now();
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => sink!.handle(req, Buffer.concat(chunks), res, arrivedAt));
    });
    sink = new Sink(server);
    if (behaviour) sink.behaviour = behaviour;
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    sink.listenPort = (server.address() as AddressInfo).port;
    return sink;
  }

  private handle(req: IncomingMessage, body: Buffer, res: ServerResponse, arrivedAt: number): void {
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (typeof v === "string") headers[k] = v;
    const record = { method: req.method ?? "", url: req.url ?? "", headers, body, receivedAt: arrivedAt };
    this.received.push(record);
    for (const w of this.waiters.slice()) {
      if (this.received.length >= w.count) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
    this.behaviour(record, res);
  }

  get port(): number {
    return this.listenPort;
  }

  url(path = "/hook"): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  /** Resolves once `count` requests have arrived; rejects after `timeoutMs`. */
  waitFor(count: number, timeoutMs = 20_000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`sink got ${this.received.length} of ${count} requests in ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Answers Pigeon's registration handshake by echoing the challenge, and 200 to everything else. */
export const echoHandshake: SinkBehaviour = (req, res) => {
  try {
    const parsed = JSON.parse(req.body.toString()) as { type?: string; data?: { challenge?: string } };
    if (parsed.type === "webhook.verification") {
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({ challenge: parsed.data?.challenge }));
      return;
    }
  } catch {
    // not JSON: fall through
  }
  res.writeHead(200);
  res.end("ok");
};

export async function waitUntil(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
  what = "condition",
): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
