import { expect, it } from "vitest";
import { describeBackends } from "../helpers/backends.js";
import {
  allPages,
  application,
  attempt,
  claimAt,
  endpoint,
  eventType,
  expectPigeonError,
  publish,
  T0,
  useStore,
} from "./fixtures.js";

// The Store contract, part 1: applications, event types, endpoints, handshakes, idempotency and
// operational events. The same body runs against every backend.

describeBackends("store: applications", (backend) => {
  const ctx = useStore(backend);

  it("creates, reads by id or uid, updates and deletes", async () => {
    const app = application({ uid: "employees", metadata: { team: "hr", cost: "42" }, rateLimit: 7 });
    await ctx.store.createApplication(app);
    expect(await ctx.store.getApplication(app.id)).toEqual(app);
    expect(await ctx.store.getApplication("employees")).toEqual(app);
    expect(await ctx.store.getApplication("nope")).toBeUndefined();

    const updated = { ...app, name: "People", handshake: "required" as const, updatedAt: T0 + 1 };
    await ctx.store.updateApplication(updated);
    expect(await ctx.store.getApplication(app.id)).toEqual(updated);

    await ctx.store.deleteApplication(app.id);
    expect(await ctx.store.getApplication(app.id)).toBeUndefined();
  });

  it("reads by id before uid when one application's uid is another's id", async () => {
    // The uid holder sorts first by id, so a lookup that takes whichever row it meets first finds it.
    const byId = application({ id: "app_2zzzzzzzzzzzzzzzzzzzzzzzzz" });
    const byUid = application({ id: "app_1aaaaaaaaaaaaaaaaaaaaaaaaa", uid: byId.id });
    await ctx.store.createApplication(byUid);
    await ctx.store.createApplication(byId);
    expect((await ctx.store.getApplication(byId.id))?.id).toBe(byId.id);
    expect((await ctx.store.loadPublishContext(byId.id, "employee.created")).app?.id).toBe(byId.id);
  });

  it("keeps metadata key order", async () => {
    const app = application({ metadata: { zeta: "1", alpha: "2", mid: "3" } });
    await ctx.store.createApplication(app);
    const got = await ctx.store.getApplication(app.id);
    expect(Object.keys(got?.metadata ?? {})).toEqual(["zeta", "alpha", "mid"]);
  });

  it("rejects a duplicate uid on create and on update with a conflict", async () => {
    await ctx.store.createApplication(application({ uid: "taken" }));
    await expectPigeonError(
      ctx.store.createApplication(application({ uid: "taken" })),
      409,
      "conflict",
      "An application with uid 'taken' already exists.",
    );
    const other = application({ uid: "free" });
    await ctx.store.createApplication(other);
    await expectPigeonError(
      ctx.store.updateApplication({ ...other, uid: "taken" }),
      409,
      "conflict",
      "An application with uid 'taken' already exists.",
    );
    // Any number of applications may have no uid.
    await ctx.store.createApplication(application());
    await ctx.store.createApplication(application());
  });

  it("pages in id order with limit+1 look-ahead", async () => {
    const apps = [];
    for (let i = 0; i < 5; i++) apps.push(application({ name: `app ${i}` }));
    for (const app of apps) await ctx.store.createApplication(app);

    const first = await ctx.store.listApplications({ limit: 2 });
    expect(first.data.map((a) => a.id)).toEqual([apps[0]!.id, apps[1]!.id]);
    expect(first).toMatchObject({ iterator: apps[1]!.id, prevIterator: `-${apps[0]!.id}`, done: false });

    const { items, sizes } = await allPages((iterator) => ctx.store.listApplications({ limit: 2, iterator }));
    expect(items.map((a) => a.id)).toEqual(apps.map((a) => a.id));
    expect(sizes).toEqual([2, 2, 1]);

    const exact = await ctx.store.listApplications({ limit: 5 });
    expect(exact.done).toBe(true);
    const empty = await ctx.store.listApplications({ limit: 2, iterator: apps[4]!.id });
    expect(empty).toEqual({ data: [], iterator: null, prevIterator: null, done: true });
  });

  it("deleting an application cascades to its endpoints, messages, deliveries and attempts", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const ep = endpoint(app.id);
    await ctx.store.createEndpoint(ep);
    const { msg, deliveries } = await publish(ctx.store, app, [ep]);
    const d = deliveries[0]!;
    const a = attempt(d);
    await ctx.store.completeDeliveries(
      [{ deliveryId: d.id, endpointId: ep.id, attempt: a, result: "succeeded" }],
      T0,
    );
    expect(await ctx.store.getAttempt(msg.id, a.id)).toBeDefined();

    await ctx.store.deleteApplication(app.id);
    expect(await ctx.store.getEndpoint(app.id, ep.id)).toBeUndefined();
    expect(await ctx.store.getMessage(app.id, msg.id)).toBeUndefined();
    expect(await ctx.store.getDelivery(msg.id, ep.id)).toBeUndefined();
    expect(await ctx.store.getAttempt(msg.id, a.id)).toBeUndefined();
    expect(await ctx.store.nextDueAt()).toBeUndefined();
  });
});

describeBackends("store: event types", (backend) => {
  const ctx = useStore(backend);

  it("creates, reads, updates, archives and expunges", async () => {
    const schemas = {
      "1": { type: "object", properties: { zeta: { type: "string" }, alpha: { type: "number" } } },
    };
    const et = eventType({ name: "employee.created", description: "A hire", schemas, featureFlag: "beta" });
    await ctx.store.createEventType(et);
    const got = await ctx.store.getEventType("employee.created");
    expect(got).toEqual(et);
    // A JSON Schema is a document: its property order survives the round trip.
    expect(JSON.stringify(got?.schemas)).toBe(JSON.stringify(schemas));
    expect(await ctx.store.getEventType("nope")).toBeUndefined();

    const updated = { ...et, description: "A new hire", deprecated: true, schemas: null, updatedAt: T0 + 5 };
    await ctx.store.updateEventType(updated);
    expect(await ctx.store.getEventType(et.name)).toEqual(updated);

    await ctx.store.deleteEventType(et.name, false);
    const archived = await ctx.store.getEventType(et.name);
    expect(archived?.archived).toBe(true);
    expect(archived?.updatedAt).toBeGreaterThan(T0 + 5);

    await ctx.store.deleteEventType(et.name, true);
    expect(await ctx.store.getEventType(et.name)).toBeUndefined();
  });

  // event_types.name is a primary key: SQLite reports its violation as SQLITE_CONSTRAINT_PRIMARYKEY.
  it("rejects a duplicate name with a conflict", async () => {
    await ctx.store.createEventType(eventType({ name: "employee.created" }));
    await expectPigeonError(
      ctx.store.createEventType(eventType({ name: "employee.created" })),
      409,
      "conflict",
      "Event type 'employee.created' already exists.",
    );
  });

  it("lists by name in byte order, hiding archived ones unless asked, with pagination", async () => {
    const names = ["b.updated", "a.created", "B.deleted", "a_created", "c.archived"];
    for (const name of names)
      await ctx.store.createEventType(eventType({ name, archived: name === "c.archived" }));

    const visible = await allPages((iterator) => ctx.store.listEventTypes({ limit: 2, iterator }, false));
    expect(visible.items.map((e) => e.name)).toEqual(["B.deleted", "a.created", "a_created", "b.updated"]);
    expect(visible.sizes).toEqual([2, 2]);

    const all = await ctx.store.listEventTypes({ limit: 10 }, true);
    expect(all.data.map((e) => e.name)).toEqual([
      "B.deleted",
      "a.created",
      "a_created",
      "b.updated",
      "c.archived",
    ]);
    expect(all.done).toBe(true);
  });
});

describeBackends("store: endpoints", (backend) => {
  const ctx = useStore(backend);

  it("reads by id before uid when one endpoint's uid is another's id", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const byId = endpoint(app.id, { id: "ep_2zzzzzzzzzzzzzzzzzzzzzzzzz" });
    const byUid = endpoint(app.id, { id: "ep_1aaaaaaaaaaaaaaaaaaaaaaaaa", uid: byId.id });
    await ctx.store.createEndpoint(byUid);
    await ctx.store.createEndpoint(byId);
    expect((await ctx.store.getEndpoint(app.id, byId.id))?.id).toBe(byId.id);
  });

  it("creates and reads by id or uid within its application, with every field round-tripped", async () => {
    const app = application();
    const otherApp = application();
    await ctx.store.createApplication(app);
    await ctx.store.createApplication(otherApp);
    const ep = endpoint(app.id, {
      uid: "bank-1",
      description: "Bank one",
      filterTypes: ["employee.created", "employee.updated"],
      channels: ["eu", "us"],
      rateLimit: 10,
      metadata: { z: "1", a: "2" },
      headers: { "X-Zeta": "1", "X-Alpha": "2" },
      secrets: [
        { key: "whsec_new", expiresAt: null },
        { key: "whsec_old", expiresAt: T0 + 86_400_000 },
      ],
      status: "pending",
      challenge: "abc",
      handshakeAttempts: 2,
      handshakeNextAt: T0 + 60_000,
      timeoutMs: 5000,
      method: "PUT",
      bodyFormat: "form",
      headerStyle: "svix",
      failingSince: T0 - 1000,
    });
    await ctx.store.createEndpoint(ep);
    const got = await ctx.store.getEndpoint(app.id, ep.id);
    expect(got).toEqual(ep);
    expect(Object.keys(got?.headers ?? {})).toEqual(["X-Zeta", "X-Alpha"]);
    expect(await ctx.store.getEndpoint(app.id, "bank-1")).toEqual(ep);
    expect(await ctx.store.getEndpoint(otherApp.id, ep.id)).toBeUndefined();
    expect(await ctx.store.getEndpoint(otherApp.id, "bank-1")).toBeUndefined();
  });

  it("keeps uids unique per application, not globally", async () => {
    const app = application();
    const otherApp = application();
    await ctx.store.createApplication(app);
    await ctx.store.createApplication(otherApp);
    await ctx.store.createEndpoint(endpoint(app.id, { uid: "bank" }));
    await ctx.store.createEndpoint(endpoint(otherApp.id, { uid: "bank" }));
    await expectPigeonError(
      ctx.store.createEndpoint(endpoint(app.id, { uid: "bank" })),
      409,
      "conflict",
      "An endpoint with uid 'bank' already exists.",
    );
    const second = endpoint(app.id, { uid: "bank-2" });
    await ctx.store.createEndpoint(second);
    await expectPigeonError(
      ctx.store.updateEndpoint({ ...second, uid: "bank" }),
      409,
      "conflict",
      "An endpoint with uid 'bank' already exists.",
    );
    await ctx.store.createEndpoint(endpoint(app.id));
    await ctx.store.createEndpoint(endpoint(app.id));
  });

  it("updates, lists with pagination, lists active ones, and deletes only within the application", async () => {
    const app = application();
    const otherApp = application();
    await ctx.store.createApplication(app);
    await ctx.store.createApplication(otherApp);
    const eps = [];
    for (let i = 0; i < 5; i++) eps.push(endpoint(app.id, { url: `https://bank${i}.invalid/` }));
    for (const ep of eps) await ctx.store.createEndpoint(ep);
    await ctx.store.createEndpoint(endpoint(otherApp.id));

    const disabled = { ...eps[1]!, disabled: true, updatedAt: T0 + 1 };
    await ctx.store.updateEndpoint(disabled);
    expect(await ctx.store.getEndpoint(app.id, disabled.id)).toEqual(disabled);

    const listed = await allPages((iterator) => ctx.store.listEndpoints(app.id, { limit: 2, iterator }));
    expect(listed.items.map((e) => e.id)).toEqual(eps.map((e) => e.id));
    expect(listed.sizes).toEqual([2, 2, 1]);

    const active = await ctx.store.listActiveEndpoints(app.id);
    expect(active.map((e) => e.id).sort()).toEqual([eps[0]!.id, eps[2]!.id, eps[3]!.id, eps[4]!.id].sort());

    await ctx.store.deleteEndpoint(otherApp.id, eps[0]!.id);
    expect(await ctx.store.getEndpoint(app.id, eps[0]!.id)).toBeDefined();
    await ctx.store.deleteEndpoint(app.id, eps[0]!.id);
    expect(await ctx.store.getEndpoint(app.id, eps[0]!.id)).toBeUndefined();
  });

  it("deleting an endpoint cascades to its deliveries and attempts, not to the message", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const [a, b] = [endpoint(app.id), endpoint(app.id)];
    await ctx.store.createEndpoint(a);
    await ctx.store.createEndpoint(b);
    const { msg, deliveries } = await publish(ctx.store, app, [a, b]);
    const at = attempt(deliveries[0]!);
    await ctx.store.completeDeliveries(
      [
        {
          deliveryId: deliveries[0]!.id,
          endpointId: a.id,
          attempt: at,
          result: "retry",
          nextAttemptAt: T0 + 1,
        },
      ],
      T0,
    );

    await ctx.store.deleteEndpoint(app.id, a.id);
    expect(await ctx.store.getDelivery(msg.id, a.id)).toBeUndefined();
    expect(await ctx.store.getAttempt(msg.id, at.id)).toBeUndefined();
    expect(await ctx.store.getDelivery(msg.id, b.id)).toBeDefined();
    expect(await ctx.store.getMessage(app.id, msg.id)).toBeDefined();
  });

  it("outcomes of deliveries whose endpoint was deleted while they were in flight are dropped, not refused", async () => {
    // A worker records outcomes in batches; one delivery of a deleted endpoint must not make the
    // whole batch fail (the dispatcher would retry it forever and record nothing else).
    const app = application();
    await ctx.store.createApplication(app);
    const [gone, kept] = [endpoint(app.id), endpoint(app.id)];
    await ctx.store.createEndpoint(gone);
    await ctx.store.createEndpoint(kept);
    const { msg, deliveries } = await publish(ctx.store, app, [gone, kept]);
    const [onGone, onKept] = deliveries as [(typeof deliveries)[0], (typeof deliveries)[0]];
    // In flight: claimed, as a worker's outcomes are for rows it holds.
    expect(await ctx.store.claimDueDeliveries(claimAt(T0))).toHaveLength(2);
    await ctx.store.deleteEndpoint(app.id, gone.id);

    const lost = attempt(onGone, { succeeded: true, responseStatusCode: 200, errorCode: null });
    const recorded = attempt(onKept, { succeeded: true, responseStatusCode: 200, errorCode: null });
    await ctx.store.completeDeliveries(
      [
        { deliveryId: onGone.id, endpointId: gone.id, attempt: lost, result: "succeeded" },
        { deliveryId: onKept.id, endpointId: kept.id, attempt: recorded, result: "succeeded" },
      ],
      T0 + 5,
    );

    expect((await ctx.store.getDelivery(msg.id, kept.id))?.status).toBe("succeeded");
    expect(await ctx.store.getAttempt(msg.id, recorded.id)).toBeDefined();
    expect(await ctx.store.getAttempt(msg.id, lost.id)).toBeUndefined();
    expect(await ctx.store.getDelivery(msg.id, gone.id)).toBeUndefined();
  });

  it("markEndpointVerified activates the endpoint and releases its held deliveries in one go", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const pending = endpoint(app.id, { status: "pending", challenge: "c-1", handshakeNextAt: T0 + 5000 });
    const other = endpoint(app.id);
    await ctx.store.createEndpoint(pending);
    await ctx.store.createEndpoint(other);
    const m1 = await publish(ctx.store, app, [pending], {}, { status: "held", nextAttemptAt: T0 });
    const m2 = await publish(ctx.store, app, [pending, other], {}, { status: "held", nextAttemptAt: T0 });
    const m3 = await publish(ctx.store, app, [other], {}, { nextAttemptAt: T0 + 50 });

    const now = T0 + 10_000;
    expect(await ctx.store.markEndpointVerified(pending.id, pending.url, now)).toBe(2);

    const ep = await ctx.store.getEndpoint(app.id, pending.id);
    expect(ep).toMatchObject({
      status: "active",
      verifiedAt: now,
      challenge: null,
      handshakeNextAt: null,
      updatedAt: now,
    });
    for (const { msg } of [m1, m2]) {
      expect(await ctx.store.getDelivery(msg.id, pending.id)).toMatchObject({
        status: "pending",
        nextAttemptAt: now,
        updatedAt: now,
      });
    }
    // Another endpoint's delivery is untouched (due: planned held, it was written for an active
    // endpoint, which the store decides at the write); pending work is untouched.
    expect((await ctx.store.getDelivery(m2.msg.id, other.id))?.status).toBe("pending");
    expect(await ctx.store.getDelivery(m3.msg.id, other.id)).toMatchObject({
      status: "pending",
      nextAttemptAt: T0 + 50,
    });

    expect(await ctx.store.markEndpointVerified(pending.id, pending.url, now + 1)).toBe(0);
    // A URL it no longer has verifies nothing.
    expect(
      await ctx.store.markEndpointVerified(pending.id, "https://elsewhere.invalid/", now + 2),
    ).toBeUndefined();
    expect((await ctx.store.getEndpoint(app.id, pending.id))?.verifiedAt).toBe(now + 1);
  });

  it("lists pending endpoints due for their handshake and reschedules them", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const late = endpoint(app.id, { status: "pending", handshakeNextAt: T0 + 300 });
    const early = endpoint(app.id, { status: "pending", handshakeNextAt: T0 + 100 });
    const future = endpoint(app.id, { status: "pending", handshakeNextAt: T0 + 10_000 });
    const unscheduled = endpoint(app.id, { status: "pending", handshakeNextAt: null });
    const disabled = endpoint(app.id, { status: "pending", handshakeNextAt: T0, disabled: true });
    const active = endpoint(app.id, { status: "active", handshakeNextAt: T0 });
    for (const ep of [late, early, future, unscheduled, disabled, active]) await ctx.store.createEndpoint(ep);

    const due = await ctx.store.listEndpointsDueForHandshake(T0 + 1000, 10);
    expect(due.map((e) => e.id)).toEqual([early.id, late.id]);
    expect((await ctx.store.listEndpointsDueForHandshake(T0 + 1000, 1)).map((e) => e.id)).toEqual([early.id]);

    await ctx.store.scheduleHandshake(early.id, 3, T0 + 5000);
    expect(await ctx.store.getEndpoint(app.id, early.id)).toMatchObject({
      handshakeAttempts: 3,
      handshakeNextAt: T0 + 5000,
    });
    await ctx.store.scheduleHandshake(late.id, 4, null);
    expect((await ctx.store.listEndpointsDueForHandshake(T0 + 1000, 10)).map((e) => e.id)).toEqual([]);
    expect((await ctx.store.listEndpointsDueForHandshake(T0 + 5000, 10)).map((e) => e.id)).toEqual([
      early.id,
    ]);
  });
});

describeBackends("store: idempotency and operational events", (backend) => {
  const ctx = useStore(backend);

  it("remembers a response per scope and key, no older than notBefore, and overwrites it", async () => {
    expect(await ctx.store.getIdempotentResponse("app_1", "k", 0)).toBeUndefined();
    await ctx.store.putIdempotentResponse("app_1", "k", { status: 202, body: '{"id":"msg_1"}' }, T0);
    expect(await ctx.store.getIdempotentResponse("app_1", "k", T0)).toEqual({
      status: 202,
      body: '{"id":"msg_1"}',
    });
    expect(await ctx.store.getIdempotentResponse("app_1", "k", T0 + 1)).toBeUndefined();
    expect(await ctx.store.getIdempotentResponse("app_2", "k", 0)).toBeUndefined();
    expect(await ctx.store.getIdempotentResponse("app_1", "other", 0)).toBeUndefined();

    await ctx.store.putIdempotentResponse("app_1", "k", { status: 409, body: "again" }, T0 + 10);
    expect(await ctx.store.getIdempotentResponse("app_1", "k", T0 + 5)).toEqual({
      status: 409,
      body: "again",
    });
  });

  it("records and pages operational events", async () => {
    const events = [0, 1, 2].map((i) => ({
      id: `op_0000000000000000000000000${i}`,
      type: "endpoint.disabled",
      appId: i === 2 ? null : "app_x",
      data: { endpointId: `ep_${i}`, nested: { z: 1, a: [1, 2] } },
      createdAt: T0 + i,
    }));
    for (const event of events) await ctx.store.recordOperationalEvent(event);
    const { items, sizes } = await allPages((iterator) =>
      ctx.store.listOperationalEvents({ limit: 2, iterator }),
    );
    expect(items).toEqual(events);
    expect(sizes).toEqual([2, 1]);
  });
});
