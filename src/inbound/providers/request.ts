import type { InboundRequest } from "./types.js";

export interface InboundRequestInit {
  method?: string;
  /** Full public URL (scheme://host/path?query). */
  url: string;
  /** Any case; repeated headers may be given as arrays (joined with ", " as node does). */
  headers?: Record<string, string | string[] | undefined>;
  body?: string | Uint8Array;
}

/** Builds an InboundRequest: upper-case method, lower-case header names, query parsed from the URL. */
export function toInboundRequest(init: InboundRequestInit): InboundRequest {
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(init.headers ?? {})) {
    if (value === undefined) continue;
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(", ") : value;
  }
  const q = init.url.indexOf("?");
  const hash = init.url.indexOf("#");
  const query = q < 0 ? "" : init.url.slice(q + 1, hash > q ? hash : undefined);
  const body = init.body ?? "";
  return {
    method: (init.method ?? "POST").toUpperCase(),
    url: init.url,
    headers,
    query: new URLSearchParams(query),
    // A Buffer is used as it is (the intake's body, read once); other byte arrays are wrapped, not copied.
    rawBody:
      typeof body === "string"
        ? Buffer.from(body, "utf8")
        : Buffer.isBuffer(body)
          ? body
          : Buffer.from(body.buffer, body.byteOffset, body.byteLength),
  };
}
