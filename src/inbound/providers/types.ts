/**
 * Types shared by every inbound provider verifier.
 *
 * A verifier is a pure function of the request bytes, the configured secrets and the clock:
 * no I/O, no state, so the ingest route can call it before anything is written.
 */

export type ProviderName =
  | "standard-webhooks"
  | "github"
  | "stripe"
  | "shopify"
  | "slack"
  | "twilio"
  | "zoom"
  | "meta"
  | "square"
  | "dropbox"
  | "x"
  | "sendgrid"
  | "mailgun"
  | "generic-hmac"
  | "basic"
  | "api-key"
  | "none";

export interface InboundRequest {
  /** Upper-case HTTP method. */
  method: string;
  /** Full public URL as the provider called it (scheme://host/path?query). Twilio and Square sign it. */
  url: string;
  /** Header names lower-cased. */
  headers: Record<string, string | undefined>;
  query: URLSearchParams;
  rawBody: Buffer;
}

export interface GenericHmacOptions {
  /** Header carrying the signature (any case; read lower-cased). */
  header: string;
  algorithm: "sha1" | "sha256" | "sha512";
  encoding: "hex" | "base64";
  /** Text before the signature in the header, e.g. `sha256=`. When set, it must be present. */
  prefix?: string;
  /** `body`: HMAC(raw body). `timestamp+body`: HMAC(timestamp + separator + raw body). */
  signed: "body" | "timestamp+body";
  /** Header carrying the unix timestamp (seconds; 13+ digits are read as milliseconds). Required for `timestamp+body`. */
  timestampHeader?: string;
  /** Between timestamp and body; default ".". */
  separator?: string;
  /** Header carrying the sender's unique event id. */
  eventIdHeader?: string;
  /** RFC 6901 pointer into the JSON body to the unique event id (used when `eventIdHeader` is absent). */
  eventIdPointer?: string;
}

export interface ProviderOptions {
  /**
   * Seconds a signed timestamp may be away from now. Default 300. `0` (or any value ≤ 0)
   * disables the check, as in stripe-node. Whether "too new" is also rejected depends on the
   * provider (Standard Webhooks and generic-hmac: both directions; the others: only too old).
   */
  toleranceSec?: number;
  /**
   * The URL the provider was configured to call, when it differs from `req.url` (e.g. behind a
   * proxy). Twilio and Square sign it. If it has no query string, the request's query is appended
   * (Twilio adds `bodySHA256` to the query).
   */
  publicUrl?: string;
  /** Required for provider `generic-hmac`. */
  generic?: GenericHmacOptions;
  /** Header read by provider `api-key`. Default `x-api-key`. For `authorization`, a `Bearer ` prefix is stripped. */
  apiKeyHeader?: string;
  /** Meta `hub.verify_token`. When unset, the token must equal one of the secrets. */
  verifyToken?: string;
  /**
   * Also accept the legacy SHA-1 headers (GitHub/Meta `X-Hub-Signature: sha1=…`, Square
   * `x-square-signature`) when the SHA-256 header is absent. Default false.
   */
  allowSha1?: boolean;
  /** Event id header for providers that define none (`basic`, `api-key`, `none`). */
  eventIdHeader?: string;
  /** Event id RFC 6901 pointer into the JSON body for providers that define none. */
  eventIdPointer?: string;
}

export type VerifyFailureCode =
  | "missing_signature"
  | "invalid_signature"
  | "timestamp_out_of_tolerance"
  | "missing_timestamp"
  | "unauthorized"
  | "unsupported";

export type VerifyResult = { ok: true } | { ok: false; code: VerifyFailureCode; message: string };

/** A complete answer to a registration handshake. Header names are lower-case. */
export interface HandshakeResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export interface ProviderVerifier {
  name: ProviderName;
  verify(req: InboundRequest, secrets: string[], opts: ProviderOptions, nowSec: number): VerifyResult;
  /**
   * Answers the provider's registration handshake; null when the request is not one. Signed
   * handshakes (Slack, Zoom, Pigeon's `webhook.verification`) are verified first and answered
   * with 401 when the signature fails; `nowSec` defaults to the current time.
   */
  handshake?(
    req: InboundRequest,
    secrets: string[],
    opts: ProviderOptions,
    nowSec?: number,
  ): HandshakeResponse | null;
  /** The provider's unique event/delivery id for de-duplication. */
  eventId?(req: InboundRequest, opts: ProviderOptions): string | undefined;
  /** Event time in epoch milliseconds when the provider carries one. */
  eventTimeMs?(req: InboundRequest, opts: ProviderOptions): number | undefined;
}
