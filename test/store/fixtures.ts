import { afterEach, beforeEach, expect } from "vitest";
import { PigeonError } from "../../src/core/errors.js";
import { newId } from "../../src/core/ids.js";
import type { ClaimRequest, Store } from "../../src/store/store.js";
import type { Application, Attempt, Delivery, Endpoint, EventType, Message } from "../../src/store/types.js";
import { type BackendName, openTestStore, type TestStore } from "../helpers/backends.js";

/** A fixed clock for store tests: the store never reads the time itself (except archiving). */
export const T0 = 1_700_000_000_000;

/** How long the claims of claimAt lease what they take, unless told otherwise. */
export const LEASE = 30_000;

/** A claim at `now` with room for everything (100 rows, 100 per endpoint), leased for `lease`. */
export function claimAt(now: number, overrides: Partial<ClaimRequest> = {}, lease = LEASE): ClaimRequest {
  return {
    now,
    limit: 100,
    leaseUntil: now + lease,
    excludeEndpointIds: [],
    endpointConcurrency: 100,
    heldByEndpoint: {},
    ...overrides,
  };
}

export function application(overrides: Partial<Application> = {}): Application {
  return {
    id: newId("app"),
    uid: null,
    name: "Employees",
    rateLimit: null,
    metadata: {},
    handshake: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function eventType(overrides: Partial<EventType> = {}): EventType {
  return {
    name: "employee.created",
    description: "",
    schemas: null,
    archived: false,
    deprecated: false,
    featureFlag: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function endpoint(appId: string, overrides: Partial<Endpoint> = {}): Endpoint {
  return {
    id: newId("ep"),
    appId,
    uid: null,
    url: "https://bank.invalid/webhooks",
    description: "",
    version: 1,
    disabled: false,
    filterTypes: null,
    channels: null,
    rateLimit: null,
    metadata: {},
    headers: {},
    secrets: [{ key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", expiresAt: null }],
    status: "active",
    challenge: null,
    verifiedAt: null,
    handshakeAttempts: 0,
    handshakeNextAt: null,
    timeoutMs: null,
    method: "POST",
    bodyFormat: "json",
    headerStyle: "webhook",
    failingSince: null,
    createdAt: T0,
    updatedAt: T0,
    ...overrides,
  };
}

export function message(appId: string, overrides: Partial<Message> = {}): Message {
  const createdAt = overrides.createdAt ?? T0;
  return {
    id: newId("msg", createdAt),
    appId,
    eventId: null,
    eventType: "employee.created",
    payload: '{"employeeId":"e-1","name":"Ada"}',
    channels: null,
    tags: null,
    createdAt,
    ...overrides,
  };
}

export function delivery(msg: Message, ep: Endpoint, overrides: Partial<Delivery> = {}): Delivery {
  return {
    id: newId("dlv"),
    msgId: msg.id,
    endpointId: ep.id,
    appId: msg.appId,
    status: "pending",
    attempts: 0,
    nextAttemptAt: T0,
    manual: false,
    lastError: null,
    createdAt: msg.createdAt,
    updatedAt: msg.createdAt,
    ...overrides,
  };
}

export function attempt(d: Delivery, overrides: Partial<Attempt> = {}): Attempt {
  const createdAt = overrides.createdAt ?? T0;
  return {
    id: newId("atmpt", createdAt),
    msgId: d.msgId,
    endpointId: d.endpointId,
    deliveryId: d.id,
    url: "https://bank.invalid/webhooks",
    succeeded: false,
    responseStatusCode: 500,
    response: "boom",
    responseDurationMs: 12,
    errorCode: "http_status",
    triggerType: 0,
    createdAt,
    ...overrides,
  };
}

/** A message with one delivery per endpoint, written through the store. */
export async function publish(
  store: Store,
  app: Application,
  endpoints: Endpoint[],
  msgOverrides: Partial<Message> = {},
  deliveryOverrides: Partial<Delivery> = {},
): Promise<{ msg: Message; deliveries: Delivery[] }> {
  const msg = message(app.id, msgOverrides);
  const deliveries = endpoints.map((ep) => delivery(msg, ep, deliveryOverrides));
  await store.createMessage(msg, deliveries);
  return { msg, deliveries };
}

/** A fresh store per test (`ctx.store`), cleaned up after it. */
export function useStore(backend: BackendName): { readonly store: Store; readonly test: TestStore } {
  let current: TestStore | undefined;
  beforeEach(async () => {
    current = await openTestStore(backend);
  });
  afterEach(async () => {
    await current?.cleanup();
    current = undefined;
  });
  return {
    get store() {
      if (!current) throw new Error("useStore: no store outside a test");
      return current.store;
    },
    get test() {
      if (!current) throw new Error("useStore: no store outside a test");
      return current;
    },
  };
}

/** Asserts that `promise` rejects with a PigeonError of this status, code and message. */
export async function expectPigeonError(
  promise: Promise<unknown>,
  status: number,
  code: string,
  message: string,
): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PigeonError);
  const pigeonError = error as PigeonError;
  expect({ status: pigeonError.status, code: pigeonError.code, message: pigeonError.message }).toEqual({
    status,
    code,
    message,
  });
}

/** Every item of every page, following iterators, with the page sizes seen. */
export async function allPages<T>(
  fetch: (iterator: string | undefined) => Promise<{ data: T[]; iterator: string | null; done: boolean }>,
): Promise<{ items: T[]; sizes: number[] }> {
  const items: T[] = [];
  const sizes: number[] = [];
  let iterator: string | undefined;
  for (let i = 0; i < 100; i++) {
    const page = await fetch(iterator);
    items.push(...page.data);
    sizes.push(page.data.length);
    if (page.done) return { items, sizes };
    iterator = page.iterator ?? undefined;
  }
  throw new Error("allPages: more than 100 pages");
}
