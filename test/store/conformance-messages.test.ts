import { expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import type { Application, Endpoint, Message } from "../../src/store/types.js";
import { describeBackends } from "../helpers/backends.js";
import {
  allPages,
  application,
  attempt,
  delivery,
  endpoint,
  eventType,
  expectPigeonError,
  message,
  publish,
  T0,
  useStore,
} from "./fixtures.js";

// The Store contract, part 2: messages with their fan-out, message queries and attempt queries.

async function setup(store: Store): Promise<{ app: Application; a: Endpoint; b: Endpoint }> {
  const app = application();
  await store.createApplication(app);
  const a = endpoint(app.id);
  const b = endpoint(app.id);
  await store.createEndpoint(a);
  await store.createEndpoint(b);
  return { app, a, b };
}

describeBackends("store: messages", (backend) => {
  const ctx = useStore(backend);

  it("writes a message with its deliveries and reads it by id or eventId", async () => {
    const { app, a, b } = await setup(ctx.store);
    const payload = '{ "z": 1,  "a": "ünïcödé ✓", "n": [1.50, 2e3] }';
    const msg = message(app.id, { eventId: "evt-1", payload, channels: ["eu"], tags: ["vip", "new"] });
    const da = delivery(msg, a);
    // Held: b is pending its handshake, the only case the store writes a held row for.
    await ctx.store.updateEndpoint({ ...b, status: "pending" }, { handshakeState: true });
    const db = delivery(msg, b, { status: "held", nextAttemptAt: T0 + 7 });
    expect(await ctx.store.createMessage(msg, [da, db])).toEqual(msg);

    const byId = await ctx.store.getMessage(app.id, msg.id);
    expect(byId).toEqual(msg);
    // The payload is what gets signed and sent: byte for byte.
    expect(byId?.payload).toBe(payload);
    expect(await ctx.store.getMessage(app.id, "evt-1")).toEqual(msg);
    expect(await ctx.store.getMessage(app.id, "evt-2")).toBeUndefined();

    const otherApp = application();
    await ctx.store.createApplication(otherApp);
    expect(await ctx.store.getMessage(otherApp.id, msg.id)).toBeUndefined();
    expect(await ctx.store.getMessage(otherApp.id, "evt-1")).toBeUndefined();

    expect(await ctx.store.getDelivery(msg.id, a.id)).toEqual(da);
    expect(await ctx.store.getDelivery(msg.id, b.id)).toEqual(db);
  });

  it("loads what publishing reads in one call: the application by id or uid, the event type, its enabled endpoints", async () => {
    const app = await ctx.store.createApplication(
      application({ uid: "payroll", metadata: { team: "hr" }, rateLimit: 7, handshake: "required" }),
    );
    const created = await ctx.store.createEventType(
      eventType({ name: "employee.created", schemas: { "1": { type: "object" } }, description: "New hire" }),
    );
    const b = await ctx.store.createEndpoint(
      endpoint(app.id, {
        channels: ["eu"],
        filterTypes: ["employee.created"],
        headers: { "x-a": "1" },
        rateLimit: 5,
      }),
    );
    const a = await ctx.store.createEndpoint(endpoint(app.id, { metadata: { k: "v" } }));
    await ctx.store.createEndpoint(endpoint(app.id, { disabled: true }));
    const other = await ctx.store.createApplication(application());
    await ctx.store.createEndpoint(endpoint(other.id));

    const byId = await ctx.store.loadPublishContext(app.id, "employee.created");
    // The same objects the single lookups return, endpoints in id order, the disabled one left out.
    expect(byId).toEqual({
      app: await ctx.store.getApplication(app.id),
      eventType: await ctx.store.getEventType("employee.created"),
      endpoints: await ctx.store.listActiveEndpoints(app.id),
    });
    expect(byId.app).toEqual(app);
    expect(byId.eventType).toEqual(created);
    expect(byId.endpoints.map((e) => e.id)).toEqual([a.id, b.id].sort());
    expect(byId.endpoints.find((e) => e.id === b.id)).toEqual(b);

    const byUid = await ctx.store.loadPublishContext("payroll", "employee.fired");
    expect(byUid.app).toEqual(app);
    expect(byUid.eventType).toBeUndefined();
    expect(byUid.endpoints).toEqual(byId.endpoints);

    expect(await ctx.store.loadPublishContext("app_nobody", "employee.created")).toEqual({
      app: undefined,
      eventType: created,
      endpoints: [],
    });
  });

  it("a message with no deliveries is fine", async () => {
    const { app } = await setup(ctx.store);
    const msg = message(app.id);
    await ctx.store.createMessage(msg, []);
    expect(await ctx.store.getMessage(app.id, msg.id)).toEqual(msg);
    expect(await ctx.store.nextDueAt()).toBeUndefined();
  });

  it("a duplicate eventId in the same application is a conflict and leaves no deliveries behind", async () => {
    const { app, a, b } = await setup(ctx.store);
    await publish(ctx.store, app, [a], { eventId: "evt-1" });

    const dup = message(app.id, { eventId: "evt-1" });
    await expectPigeonError(
      ctx.store.createMessage(dup, [delivery(dup, a), delivery(dup, b)]),
      409,
      "duplicate_event_id",
      "A message with eventId 'evt-1' already exists.",
    );
    expect(await ctx.store.getMessage(app.id, dup.id)).toBeUndefined();
    expect(await ctx.store.getDelivery(dup.id, a.id)).toBeUndefined();
    expect(await ctx.store.getDelivery(dup.id, b.id)).toBeUndefined();
    expect(await ctx.store.countDeliveriesByStatus(b.id)).toMatchObject({ pending: 0 });

    // The same eventId in another application, and any number of messages without one, are fine.
    const other = await setup(ctx.store);
    await publish(ctx.store, other.app, [other.a], { eventId: "evt-1" });
    await publish(ctx.store, app, [a]);
    await publish(ctx.store, app, [a]);
  });

  it("lists newest first with pagination and filters by event type, channel and time", async () => {
    const { app, a, b } = await setup(ctx.store);
    const other = await setup(ctx.store);
    await publish(ctx.store, other.app, [other.a], { createdAt: T0 + 50 });
    const specs: Partial<Message>[] = [
      { eventType: "employee.created", channels: ["eu"], createdAt: T0 + 100 },
      { eventType: "employee.updated", channels: ["us", "eu"], createdAt: T0 + 200 },
      { eventType: "employee.created", channels: null, createdAt: T0 + 300 },
      { eventType: "employee.deleted", channels: ["us"], createdAt: T0 + 400 },
      { eventType: "employee.created", channels: ["apac"], createdAt: T0 + 500 },
    ];
    const msgs: Message[] = [];
    for (const [i, spec] of specs.entries()) {
      msgs.push((await publish(ctx.store, app, i % 2 === 0 ? [a] : [a, b], spec)).msg);
    }
    const ids = (list: Message[]) => list.map((m) => m.id);
    const newestFirst = [...msgs].reverse();

    const pages = await allPages((iterator) => ctx.store.listMessages(app.id, { limit: 2, iterator }));
    expect(ids(pages.items)).toEqual(ids(newestFirst));
    expect(pages.sizes).toEqual([2, 2, 1]);
    const first = await ctx.store.listMessages(app.id, { limit: 2 });
    expect(first).toMatchObject({ iterator: msgs[3]!.id, prevIterator: `-${msgs[4]!.id}`, done: false });

    const created = await ctx.store.listMessages(app.id, { limit: 10, eventTypes: ["employee.created"] });
    expect(ids(created.data)).toEqual([msgs[4]!.id, msgs[2]!.id, msgs[0]!.id]);
    const two = await ctx.store.listMessages(app.id, {
      limit: 10,
      eventTypes: ["employee.updated", "employee.deleted"],
    });
    expect(ids(two.data)).toEqual([msgs[3]!.id, msgs[1]!.id]);
    expect((await ctx.store.listMessages(app.id, { limit: 10, eventTypes: [] })).data).toHaveLength(5);

    const eu = await ctx.store.listMessages(app.id, { limit: 10, channel: "eu" });
    expect(ids(eu.data)).toEqual([msgs[1]!.id, msgs[0]!.id]);
    expect((await ctx.store.listMessages(app.id, { limit: 10, channel: "e" })).data).toEqual([]);

    const window = await ctx.store.listMessages(app.id, { limit: 10, after: T0 + 100, before: T0 + 400 });
    expect(ids(window.data)).toEqual([msgs[2]!.id, msgs[1]!.id]);

    const combined = await allPages((iterator) =>
      ctx.store.listMessages(app.id, {
        limit: 1,
        iterator,
        eventTypes: ["employee.created"],
        after: T0 + 100,
      }),
    );
    expect(ids(combined.items)).toEqual([msgs[4]!.id, msgs[2]!.id]);

    const forB = await allPages((iterator) =>
      ctx.store.listMessagesForEndpoint(app.id, b.id, { limit: 1, iterator }),
    );
    expect(ids(forB.items)).toEqual([msgs[3]!.id, msgs[1]!.id]);
    const forBUs = await ctx.store.listMessagesForEndpoint(app.id, b.id, {
      limit: 10,
      channel: "us",
      before: T0 + 400,
    });
    expect(ids(forBUs.data)).toEqual([msgs[1]!.id]);
    expect((await ctx.store.listMessagesForEndpoint(other.app.id, b.id, { limit: 10 })).data).toEqual([]);
  });
});

describeBackends("store: attempts", (backend) => {
  const ctx = useStore(backend);

  it("lists a message's and an endpoint's attempts newest first, filtered and paged", async () => {
    const { app, a, b } = await setup(ctx.store);
    const m1 = await publish(ctx.store, app, [a, b], { createdAt: T0 });
    const m2 = await publish(ctx.store, app, [a], { createdAt: T0 + 1 });
    const [d1a, d1b] = m1.deliveries;
    const d2a = m2.deliveries[0]!;
    const attempts = [
      attempt(d1a!, { createdAt: T0 + 10, succeeded: false, responseStatusCode: 500 }),
      attempt(d1b!, { createdAt: T0 + 20, succeeded: true, responseStatusCode: 200, errorCode: null }),
      attempt(d1a!, {
        createdAt: T0 + 30,
        succeeded: true,
        responseStatusCode: 204,
        errorCode: null,
        triggerType: 1,
      }),
      attempt(d2a, { createdAt: T0 + 40, succeeded: false, responseStatusCode: 0, errorCode: "timeout" }),
    ];
    for (const at of attempts) {
      await ctx.store.completeDeliveries(
        [
          {
            deliveryId: at.deliveryId,
            endpointId: at.endpointId,
            attempt: at,
            result: at.succeeded ? "succeeded" : "retry",
            nextAttemptAt: T0 + 1000,
          },
        ],
        at.createdAt,
      );
    }
    const ids = (list: { id: string }[]) => list.map((x) => x.id);
    const [at0, at1, at2, at3] = attempts as [
      (typeof attempts)[0],
      (typeof attempts)[0],
      (typeof attempts)[0],
      (typeof attempts)[0],
    ];

    expect(await ctx.store.getAttempt(m1.msg.id, at2.id)).toEqual(at2);
    expect(await ctx.store.getAttempt(m2.msg.id, at2.id)).toBeUndefined();

    const byMsg = await allPages((iterator) =>
      ctx.store.listAttemptsByMessage(app.id, m1.msg.id, { limit: 2, iterator }),
    );
    expect(ids(byMsg.items)).toEqual([at2.id, at1.id, at0.id]);
    expect(byMsg.sizes).toEqual([2, 1]);
    const ok = await ctx.store.listAttemptsByMessage(app.id, m1.msg.id, { limit: 10, status: 0 });
    expect(ids(ok.data)).toEqual([at2.id, at1.id]);
    const failed = await ctx.store.listAttemptsByMessage(app.id, m1.msg.id, { limit: 10, status: 2 });
    expect(ids(failed.data)).toEqual([at0.id]);
    const onA = await ctx.store.listAttemptsByMessage(app.id, m1.msg.id, { limit: 10, endpointId: a.id });
    expect(ids(onA.data)).toEqual([at2.id, at0.id]);
    const window = await ctx.store.listAttemptsByMessage(app.id, m1.msg.id, {
      limit: 10,
      after: T0 + 10,
      before: T0 + 30,
    });
    expect(ids(window.data)).toEqual([at1.id]);

    const byEndpoint = await allPages((iterator) =>
      ctx.store.listAttemptsByEndpoint(app.id, a.id, { limit: 1, iterator }),
    );
    expect(ids(byEndpoint.items)).toEqual([at3.id, at2.id, at0.id]);
    const failedOnA = await ctx.store.listAttemptsByEndpoint(app.id, a.id, {
      limit: 10,
      status: 2,
      after: T0,
    });
    expect(ids(failedOnA.data)).toEqual([at3.id, at0.id]);

    // Scoped by application.
    const other = await setup(ctx.store);
    expect((await ctx.store.listAttemptsByMessage(other.app.id, m1.msg.id, { limit: 10 })).data).toEqual([]);
    expect((await ctx.store.listAttemptsByEndpoint(other.app.id, a.id, { limit: 10 })).data).toEqual([]);
  });
});
