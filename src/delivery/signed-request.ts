import { boundedMemo } from "../core/bounded-memo.js";
import { decodeSecret } from "../signing/secrets.js";
import { buildSignatureHeaders, signPayload } from "../signing/standard-webhooks.js";
import type { Endpoint, EndpointSecret } from "../store/types.js";
import { encodeDelivery } from "./body-format.js";
import type { OutboundRequest } from "./http-sender.js";

export const USER_AGENT = "Pigeon-Webhooks/0.1";

/** Decoded keys by secret text: checking and decoding one cost as much as the HMAC it keys. */
const decodedKey = boundedMemo(decodeSecret);

/** The secrets that sign at `now`: the current one plus rotated-out ones still inside their grace period. */
export function signingKeys(secrets: EndpointSecret[], now: number): Buffer[] {
  return secrets.filter((s) => s.expiresAt === null || s.expiresAt > now).map((s) => decodedKey(s.key));
}

export interface SignedRequestInput {
  /** The `webhook-id`: the message id, the same on every retry so receivers can de-duplicate. */
  webhookId: string;
  /** The payload as JSON text, exactly as accepted. */
  payload: string;
  endpoint: Endpoint;
  now: number;
  defaultTimeoutMs: number;
}

/**
 * Builds the request one attempt sends, signed (Standard Webhooks v1) over the exact bytes on the
 * wire. A GET carries the payload in its query string, so there the query string is what is
 * signed. Endpoint headers are applied first so they can never override the signature headers.
 */
export function buildSignedRequest(input: SignedRequestInput): OutboundRequest {
  const { endpoint, now } = input;
  const encoded = encodeDelivery({
    url: endpoint.url,
    method: endpoint.method,
    format: endpoint.bodyFormat,
    payload:
      endpoint.bodyFormat === "json" && endpoint.method !== "GET" ? undefined : JSON.parse(input.payload),
    rawJson: input.payload,
  });
  const signedBytes = encoded.body ?? Buffer.from(new URL(encoded.url).search.replace(/^\?/, ""));
  const timestampSec = Math.floor(now / 1000);
  const signature = signPayload(
    signingKeys(endpoint.secrets, now),
    input.webhookId,
    timestampSec,
    signedBytes,
  );
  const headers: Record<string, string> = {
    ...lowerCaseNames(endpoint.headers),
    "user-agent": USER_AGENT,
    ...buildSignatureHeaders({
      msgId: input.webhookId,
      timestampSec,
      signature,
      headerStyle: endpoint.headerStyle,
    }),
  };
  if (encoded.contentType) headers["content-type"] = encoded.contentType;
  const request: OutboundRequest = {
    url: encoded.url,
    method: endpoint.method,
    headers,
    timeoutMs: endpoint.timeoutMs ?? input.defaultTimeoutMs,
  };
  if (encoded.body) request.body = encoded.body;
  return request;
}

function lowerCaseNames(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) out[name.toLowerCase()] = value;
  return out;
}
