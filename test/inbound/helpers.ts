import { createHmac, randomBytes } from "node:crypto";
import { expect } from "vitest";
import type { TestPigeon } from "../helpers/pigeon.js";

/** What the helpers below use of a Pigeon: an in-process TestPigeon or a `pigeon serve` child. */
export type PigeonClient = Pick<TestPigeon, "baseUrl" | "request">;

/** Signers written from the providers' docs (not from Pigeon's verifiers), for end-to-end tests. */

export const nowSec = (): number => Math.floor(Date.now() / 1000);

export function whsec(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

export function signStandard(
  secret: string,
  id: string,
  body: string,
  ts: number = nowSec(),
): Record<string, string> {
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
  return {
    "content-type": "application/json",
    "webhook-id": id,
    "webhook-timestamp": String(ts),
    "webhook-signature": `v1,${sig}`,
  };
}

export function signGithub(
  secret: string,
  body: string,
  delivery: string,
  event = "push",
): Record<string, string> {
  return {
    "content-type": "application/json",
    "x-github-event": event,
    "x-github-delivery": delivery,
    "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
  };
}

export function signStripe(secret: string, body: string, ts: number = nowSec()): Record<string, string> {
  const v1 = createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex");
  return { "content-type": "application/json", "stripe-signature": `t=${ts},v1=${v1}` };
}

export function signSlack(
  secret: string,
  body: string,
  ts: number = nowSec(),
  contentType = "application/json",
): Record<string, string> {
  const sig = createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex");
  return {
    "content-type": contentType,
    "x-slack-request-timestamp": String(ts),
    "x-slack-signature": `v0=${sig}`,
  };
}

export function signZoom(secret: string, body: string, ts: number = nowSec()): Record<string, string> {
  const sig = createHmac("sha256", secret).update(`v0:${ts}:${body}`).digest("hex");
  return {
    "content-type": "application/json",
    "x-zm-request-timestamp": String(ts),
    "x-zm-signature": `v0=${sig}`,
  };
}

/** generic-hmac as configured by GENERIC_OPTIONS below. */
export function signGeneric(
  secret: string,
  body: string,
  ts: number = nowSec(),
  id = "g-1",
): Record<string, string> {
  const sig = createHmac("sha256", secret).update(`${ts}.${body}`).digest("hex");
  return {
    "content-type": "application/json",
    "x-acme-signature": `sha256=${sig}`,
    "x-acme-timestamp": String(ts),
    "x-acme-id": id,
  };
}

export const GENERIC_OPTIONS = {
  generic: {
    header: "x-acme-signature",
    algorithm: "sha256",
    encoding: "hex",
    prefix: "sha256=",
    signed: "timestamp+body",
    timestampHeader: "x-acme-timestamp",
    eventIdHeader: "x-acme-id",
  },
} as const;

export interface SourceOutBody {
  id: string;
  uid: string | null;
  ingestUrl: string;
  ingestPath: string;
  stats: Record<string, number | string | null>;
  [key: string]: unknown;
}

export async function createSource(p: PigeonClient, body: Record<string, unknown>): Promise<SourceOutBody> {
  const res = await p.request("POST", "/api/v1/source", body);
  const text = await res.text();
  expect(res.status, text).toBe(201);
  return JSON.parse(text) as SourceOutBody;
}

export interface InboxItemBody {
  id: string;
  status: string;
  eventId: string | null;
  eventType: string | null;
  attempts: number;
  lastError: string | null;
  body?: string | null;
  [key: string]: unknown;
}

export async function inbox(p: PigeonClient, sourceId: string, query = ""): Promise<InboxItemBody[]> {
  const res = await p.request("GET", `/api/v1/source/${sourceId}/inbox?limit=250${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { data: InboxItemBody[] }).data;
}

/** POSTs (or other method) to an ingest URL without the admin token, as a provider would. */
export function send(
  p: PigeonClient,
  path: string,
  body: string | undefined,
  headers: Record<string, string>,
  method = "POST",
): Promise<Response> {
  const init: RequestInit = { method, headers };
  if (body !== undefined) init.body = body;
  return fetch(`${p.baseUrl}${path}`, init);
}
