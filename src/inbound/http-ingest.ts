import type { IncomingMessage, ServerResponse } from "node:http";
import { type Intake, type IntakeAnswer, jsonAnswer } from "./intake.js";
import { readRequestBody } from "./read-request-body.js";
import type { Source } from "./types.js";

export const INGEST_METHODS: ReadonlySet<string> = new Set(["POST", "PUT", "GET"]);

export interface IngestListenerOptions {
  intake: Intake;
  /** The source a request is for; undefined answers 404. */
  resolveSource: (req: IncomingMessage) => Promise<Source | undefined>;
  /** Largest body accepted; larger ones get 413. */
  maxBodyBytes: number;
}

function send(res: ServerResponse, answer: IntakeAnswer): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(answer.status, { ...answer.headers, "content-length": Buffer.byteLength(answer.body) });
  res.end(answer.body);
}

/**
 * The node:http mounting of the intake, shared by the server's `/in/{source}` route and the
 * receiver helpers. It never throws and never answers 500 for anything a client sends: every
 * path ends in a 2xx, a 4xx with a stable code, or a 503 when the store is down.
 */
export function createIngestListener(options: IngestListenerOptions) {
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? "GET";
    if (!INGEST_METHODS.has(method)) {
      req.resume();
      const answer = jsonAnswer(
        405,
        "method_not_allowed",
        `Send webhooks with POST, PUT or GET, not ${method}.`,
      );
      answer.headers.allow = "POST, PUT, GET";
      send(res, answer);
      return;
    }
    const source = await options.resolveSource(req);
    if (!source) {
      req.resume();
      send(res, jsonAnswer(404, "source_not_found", "No source has this ingest URL; check the id or uid."));
      return;
    }
    const read = await readRequestBody(req, options.maxBodyBytes);
    if (!read.ok) {
      if (read.reason === "too_large") {
        send(
          res,
          jsonAnswer(
            413,
            "payload_too_large",
            `The request body is larger than the limit of ${options.maxBodyBytes} bytes.`,
          ),
        );
      } else {
        res.destroy();
      }
      return;
    }
    const answer = await options.intake.receive(source, {
      method,
      target: req.url ?? "/",
      headers: req.headers,
      body: read.body,
    });
    send(res, answer);
  }

  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((error: unknown) => {
      console.error("pigeon: unexpected error receiving", req.method, req.url, error);
      req.resume();
      send(res, jsonAnswer(503, "inbox_unavailable", "The request could not be handled; send it again."));
    });
  };
}
