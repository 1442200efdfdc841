import { SSRF_BLOCKED_CODE } from "./ssrf/guarded-connect.js";

/**
 * Failures are data: every way an outbound request can fail maps to one stable code that is
 * stored on the attempt and shown to users. The mapping reads Node/undici error codes, never
 * messages, because messages change between versions.
 */
export type DeliveryErrorCode =
  | "timeout"
  | "dns"
  | "connection_refused"
  | "connection_reset"
  | "tls"
  | "ssrf_blocked"
  | "http_status"
  | "invalid_url"
  | "response_too_large"
  | "other";

const BY_CODE: Readonly<Record<string, DeliveryErrorCode>> = {
  [SSRF_BLOCKED_CODE]: "ssrf_blocked",
  ENOTFOUND: "dns",
  EAI_AGAIN: "dns",
  EAI_FAIL: "dns",
  EAI_NODATA: "dns",
  EAI_NONAME: "dns",
  ECONNREFUSED: "connection_refused",
  ECONNRESET: "connection_reset",
  EPIPE: "connection_reset",
  ECONNABORTED: "connection_reset",
  UND_ERR_SOCKET: "connection_reset",
  ETIMEDOUT: "timeout",
  UND_ERR_CONNECT_TIMEOUT: "timeout",
  UND_ERR_HEADERS_TIMEOUT: "timeout",
  UND_ERR_BODY_TIMEOUT: "timeout",
  UND_ERR_RES_EXCEEDED_MAX_SIZE: "response_too_large",
  ERR_INVALID_URL: "invalid_url",
  // A plain-HTTP server answering a TLS ClientHello yields EPROTO ("wrong version number").
  EPROTO: "tls",
};

// OpenSSL certificate-verification codes are bare names such as CERT_HAS_EXPIRED.
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|ERR_OSSL_)|CERT|SELF_SIGNED|UNABLE_TO_|HOSTNAME_MISMATCH/;

interface CodedError {
  code?: unknown;
  cause?: unknown;
  errors?: unknown;
  message?: unknown;
}

function asCoded(err: unknown): CodedError | undefined {
  return typeof err === "object" && err !== null ? (err as CodedError) : undefined;
}

function codeOf(code: unknown): DeliveryErrorCode | undefined {
  if (typeof code !== "string") return undefined;
  return BY_CODE[code] ?? (TLS_CODE.test(code) ? "tls" : undefined);
}

/**
 * Walk the error, its `cause` chain and, for happy-eyeballs AggregateErrors, its first inner
 * error, and return the first code we recognise.
 */
export function classifyError(err: unknown): DeliveryErrorCode {
  let current = asCoded(err);
  for (let depth = 0; current && depth < 5; depth++) {
    const code = codeOf(current.code);
    if (code) return code;
    if (Array.isArray(current.errors) && current.errors.length > 0) {
      const inner = codeOf(asCoded(current.errors[0])?.code);
      if (inner) return inner;
    }
    current = asCoded(current.cause);
  }
  return "other";
}

/** A one-line human message; AggregateErrors (happy eyeballs) often have an empty message. */
export function describeError(err: unknown): string {
  const coded = asCoded(err);
  if (!coded) return String(err);
  const message = typeof coded.message === "string" ? coded.message : "";
  const code = typeof coded.code === "string" ? coded.code : "";
  if (message) return message;
  if (Array.isArray(coded.errors) && coded.errors.length > 0) {
    return coded.errors.map((e) => describeError(e)).join("; ");
  }
  return code || "unknown error";
}
