import type { HandshakeMode } from "../core/config.js";

/** The domain records every store backend reads and writes. Times are epoch milliseconds. */

export interface Application {
  id: string;
  uid: string | null;
  name: string;
  rateLimit: number | null;
  metadata: Record<string, string>;
  /** null: use the server default (PIGEON_HANDSHAKE). */
  handshake: HandshakeMode | null;
  createdAt: number;
  updatedAt: number;
}

export interface EventType {
  name: string;
  description: string;
  /** Svix shape: `{"1": <JSON Schema>}`; version "1" is the one payloads are checked against. */
  schemas: Record<string, unknown> | null;
  archived: boolean;
  deprecated: boolean;
  featureFlag: string | null;
  createdAt: number;
  updatedAt: number;
}

export interface EndpointSecret {
  key: string;
  /** null for the current secret; for a rotated-out secret, when it stops signing. */
  expiresAt: number | null;
}

export type EndpointStatus = "pending" | "active";
export type HttpMethod = "POST" | "PUT" | "GET";
export type BodyFormat = "json" | "form" | "xml";
export type HeaderStyle = "webhook" | "svix";

export interface Endpoint {
  id: string;
  appId: string;
  uid: string | null;
  url: string;
  description: string;
  version: number;
  disabled: boolean;
  filterTypes: string[] | null;
  channels: string[] | null;
  rateLimit: number | null;
  metadata: Record<string, string>;
  headers: Record<string, string>;
  secrets: EndpointSecret[];
  status: EndpointStatus;
  challenge: string | null;
  verifiedAt: number | null;
  /** Handshake tries so far, and when the next one is due (null: none scheduled). */
  handshakeAttempts: number;
  handshakeNextAt: number | null;
  timeoutMs: number | null;
  method: HttpMethod;
  bodyFormat: BodyFormat;
  headerStyle: HeaderStyle;
  /** When the current run of failures began; null while the endpoint is healthy. */
  failingSince: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface Message {
  id: string;
  appId: string;
  eventId: string | null;
  eventType: string;
  /** The payload exactly as accepted (JSON text); these are the bytes that get signed and sent. */
  payload: string;
  channels: string[] | null;
  tags: string[] | null;
  createdAt: number;
}

export type DeliveryStatus = "held" | "pending" | "sending" | "succeeded" | "failed";

export interface Delivery {
  id: string;
  msgId: string;
  endpointId: string;
  appId: string;
  status: DeliveryStatus;
  attempts: number;
  nextAttemptAt: number;
  /** Queued by a resend or recover: its attempts are recorded with triggerType 1. */
  manual: boolean;
  lastError: string | null;
  createdAt: number;
  updatedAt: number;
}

/** Svix MessageStatus numbers, used on the wire: 0 success, 1 pending, 2 fail, 3 sending. */
export const WireStatus = { success: 0, pending: 1, fail: 2, sending: 3 } as const;

export interface Attempt {
  id: string;
  msgId: string;
  endpointId: string;
  deliveryId: string;
  url: string;
  succeeded: boolean;
  responseStatusCode: number;
  response: string;
  responseDurationMs: number;
  errorCode: string | null;
  /** 0 scheduled, 1 manual (resend/recover), as in Svix. */
  triggerType: 0 | 1;
  createdAt: number;
}

export interface OperationalEvent {
  id: string;
  type: string;
  appId: string | null;
  data: Record<string, unknown>;
  createdAt: number;
}

export interface Page<T> {
  data: T[];
  iterator: string | null;
  prevIterator: string | null;
  done: boolean;
}

export interface PageQuery {
  limit: number;
  iterator?: string | undefined;
}
