import type { PoolClient } from "pg";
import { expect, it } from "vitest";
import type { Endpoint, Message } from "../../src/store/types.js";
import { describeBackend, describeBackends, postgresAdmin } from "../helpers/backends.js";
import { application, delivery, endpoint, message, publish, T0, useStore } from "./fixtures.js";

// The Store's side of the registration handshake: deliveries of a pending endpoint are 'held',
// never due, whoever writes them and whatever the writer read earlier; a handshake verifies only
// the URL it challenged.

const OLD_URL = "https://old.invalid/hook";
const NEW_URL = "https://new.invalid/hook";

describeBackends("store: held deliveries of pending endpoints", (backend) => {
  const ctx = useStore(backend);

  async function setup() {
    const app = application();
    await ctx.store.createApplication(app);
    const ep = endpoint(app.id, { status: "pending", url: OLD_URL });
    await ctx.store.createEndpoint(ep);
    return { app, ep };
  }

  it("a message planned while the endpoint was pending, written after it verified, is due (not held forever)", async () => {
    const { app, ep } = await setup();
    // The API reads the endpoint as pending ...
    const loaded = await ctx.store.loadPublishContext(app.id, "x.y");
    expect(loaded.endpoints[0]?.status).toBe("pending");
    // ... the handshake verifies it meanwhile (nothing held yet to release) ...
    expect(await ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 10)).toBe(0);
    // ... and the API then writes what it planned from its read: a held delivery.
    const { msg } = await publish(ctx.store, app, [ep], {}, { status: "held" });
    expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("pending");
    expect(await ctx.store.nextDueAt()).toBe(T0);
  });

  it("verifying releases held deliveries due now, or at their own later time (a deliverAt)", async () => {
    const { app, ep } = await setup();
    const { msg: soon } = await publish(ctx.store, app, [ep], {}, { status: "held", nextAttemptAt: T0 });
    const { msg: later } = await publish(
      ctx.store,
      app,
      [ep],
      {},
      { status: "held", nextAttemptAt: T0 + 60_000 },
    );
    expect(await ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 10)).toBe(2);
    expect(await ctx.store.getDelivery(soon.id, ep.id)).toMatchObject({
      status: "pending",
      nextAttemptAt: T0 + 10,
    });
    expect(await ctx.store.getDelivery(later.id, ep.id)).toMatchObject({
      status: "pending",
      nextAttemptAt: T0 + 60_000,
    });
  });

  it("an edit made from a read taken before the handshake finished does not undo the verification", async () => {
    const { app, ep } = await setup();
    const { msg } = await publish(ctx.store, app, [ep], {}, { status: "held" });
    // An API edit reads the endpoint while it is pending (a headers change, a secret rotation) ...
    const read = await ctx.store.getEndpoint(app.id, ep.id);
    expect(read?.status).toBe("pending");
    // ... the handshake verifies it meanwhile ...
    expect(await ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 10)).toBe(1);
    // ... and the edit writes back what it read, with its own change.
    await ctx.store.updateEndpoint({ ...read!, description: "edited", updatedAt: T0 + 20 });
    expect(await ctx.store.getEndpoint(app.id, ep.id)).toMatchObject({
      status: "active",
      description: "edited",
    });
    expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("pending");
  });

  it("a delivery planned as due for an endpoint that is pending is written held", async () => {
    const { app, ep } = await setup();
    const { msg } = await publish(ctx.store, app, [ep], {}, { status: "pending" });
    expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("held");
    // Finished deliveries (an import, a test fixture) keep their status.
    const done = message(app.id);
    await ctx.store.createMessage(done, [delivery(done, ep, { status: "failed" })]);
    expect((await ctx.store.getDelivery(done.id, ep.id))?.status).toBe("failed");
  });

  it("a resend or a recover for a pending endpoint is held; for an active one, due", async () => {
    const { app, ep } = await setup();
    const failed = message(app.id);
    await ctx.store.createMessage(failed, [delivery(failed, ep, { status: "failed", createdAt: T0 })]);
    const other = message(app.id);
    await ctx.store.createMessage(other, [delivery(other, ep, { status: "failed", createdAt: T0 })]);

    const existing = await ctx.store.getDelivery(failed.id, ep.id);
    await ctx.store.requeueDelivery(existing!, T0 + 5);
    expect(await ctx.store.getDelivery(failed.id, ep.id)).toMatchObject({ status: "held", manual: true });
    expect(await ctx.store.recoverFailedDeliveries(ep.id, T0, T0 + 6)).toBe(1);
    expect((await ctx.store.getDelivery(other.id, ep.id))?.status).toBe("held");
    const claimed = await ctx.store.claimDueDeliveries({
      now: T0 + 100,
      limit: 10,
      leaseUntil: T0 + 30_000,
      excludeEndpointIds: [],
      endpointConcurrency: 10,
      heldByEndpoint: {},
    });
    expect(claimed).toHaveLength(0);

    // Verified: both are released, and later resends are due at once.
    expect(await ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 10)).toBe(2);
    await ctx.store.requeueDelivery((await ctx.store.getDelivery(failed.id, ep.id))!, T0 + 11);
    expect((await ctx.store.getDelivery(failed.id, ep.id))?.status).toBe("pending");
  });

  it("an endpoint saved back to pending (new URL) holds its queued deliveries in the same write", async () => {
    const app = application();
    await ctx.store.createApplication(app);
    const ep = endpoint(app.id, { status: "active", url: OLD_URL, verifiedAt: T0 });
    const bystander = endpoint(app.id);
    await ctx.store.createEndpoint(ep);
    await ctx.store.createEndpoint(bystander);
    const queued = await publish(ctx.store, app, [ep, bystander], {}, { nextAttemptAt: T0 + 500 });
    const finished = message(app.id);
    await ctx.store.createMessage(finished, [delivery(finished, ep, { status: "succeeded" })]);

    await ctx.store.updateEndpoint(
      { ...ep, url: NEW_URL, status: "pending", verifiedAt: null, updatedAt: T0 + 1 },
      { holdQueued: true },
    );
    expect((await ctx.store.getDelivery(queued.msg.id, ep.id))?.status).toBe("held");
    expect((await ctx.store.getDelivery(queued.msg.id, bystander.id))?.status).toBe("pending");
    expect((await ctx.store.getDelivery(finished.id, ep.id))?.status).toBe("succeeded");
  });

  it("verifies only the URL that was challenged, and only records that URL's failures", async () => {
    const { app, ep } = await setup();
    const { msg } = await publish(ctx.store, app, [ep]);
    // The URL changes while the old URL's handshake is in flight.
    await ctx.store.updateEndpoint({ ...ep, url: NEW_URL, updatedAt: T0 + 1 }, { holdQueued: true });
    await ctx.store.scheduleHandshake(ep.id, 0, T0 + 2);

    expect(await ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 5)).toBeUndefined();
    expect(await ctx.store.getEndpoint(app.id, ep.id)).toMatchObject({
      status: "pending",
      verifiedAt: null,
      url: NEW_URL,
    });
    expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("held");
    // The old URL's failure does not push back (or stop) the new URL's handshake.
    await ctx.store.scheduleHandshake(ep.id, 5, null, OLD_URL);
    expect(await ctx.store.getEndpoint(app.id, ep.id)).toMatchObject({
      handshakeAttempts: 0,
      handshakeNextAt: T0 + 2,
    });
    expect((await ctx.store.listEndpointsDueForHandshake(T0 + 10, 10)).map((e) => e.id)).toEqual([ep.id]);

    expect(await ctx.store.markEndpointVerified(ep.id, NEW_URL, T0 + 20)).toBe(1);
    expect(await ctx.store.getEndpoint(app.id, ep.id)).toMatchObject({
      status: "active",
      verifiedAt: T0 + 20,
    });
    expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("pending");
  });
});

/**
 * PostgreSQL: the API and the handshake run in different processes, so a status change and a
 * delivery write can overlap. Another connection plays the other side, holding its transaction
 * open, to show they serialise: neither can leave a held row of an active endpoint nor a due row
 * of a pending one.
 */
describeBackend("postgres", "store: held deliveries and concurrent status changes", () => {
  const ctx = useStore("postgres");

  async function setup(status: "pending" | "active") {
    const app = application();
    await ctx.store.createApplication(app);
    const ep = endpoint(app.id, { status, url: OLD_URL });
    await ctx.store.createEndpoint(ep);
    return { app, ep };
  }

  /**
   * Another process's delivery write on `other`, left uncommitted: the endpoint read under the lock
   * every delivery write takes (KEY SHARE), and a row of `status` inserted.
   */
  async function beginDeliveryWrite(
    other: PoolClient,
    msg: Message,
    ep: Endpoint,
    status: "held" | "pending",
  ): Promise<void> {
    const schema = ctx.test.schema!;
    await other.query("BEGIN");
    await other.query(`SELECT status FROM "${schema}".endpoints WHERE id = $1 FOR KEY SHARE`, [ep.id]);
    const d = delivery(msg, ep);
    await other.query(
      `INSERT INTO "${schema}".deliveries (id, msg_id, endpoint_id, app_id, status, attempts, next_attempt_at,
         manual, last_error, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, 0, $6, FALSE, NULL, $6, $6)`,
      [d.id, msg.id, ep.id, msg.appId, status, T0],
    );
  }

  /** Whether `promise` is still unsettled after `ms`. */
  async function stillWaiting(promise: Promise<unknown>, ms = 300): Promise<boolean> {
    let settled = false;
    void promise.then(
      () => (settled = true),
      () => (settled = true),
    );
    await new Promise((resolve) => setTimeout(resolve, ms));
    return !settled;
  }

  it("a message written while a verify is in progress waits for it and is due", async () => {
    const { app, ep } = await setup("pending");
    const schema = ctx.test.schema!;
    const other = await postgresAdmin().connect();
    try {
      // The other process's verify: the endpoint locked and made active, not yet committed.
      await other.query("BEGIN");
      await other.query(`SELECT 1 FROM "${schema}".endpoints WHERE id = $1 FOR UPDATE`, [ep.id]);
      await other.query(`UPDATE "${schema}".endpoints SET status = 'active' WHERE id = $1`, [ep.id]);
      const msg = message(app.id);
      const writing = ctx.store.createMessage(msg, [delivery(msg, ep, { status: "held" })]);
      expect(await stillWaiting(writing)).toBe(true);
      await other.query("COMMIT");
      await writing;
      expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("pending");
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      other.release();
    }
  });

  it("a verify waits for a held delivery being written and releases it", async () => {
    const { app, ep } = await setup("pending");
    const msg = message(app.id);
    await ctx.store.createMessage(msg, []);
    const other = await postgresAdmin().connect();
    try {
      // The other process's publish: a held row, not yet committed.
      await beginDeliveryWrite(other, msg, ep, "held");
      const verifying = ctx.store.markEndpointVerified(ep.id, OLD_URL, T0 + 10);
      expect(await stillWaiting(verifying)).toBe(true);
      await other.query("COMMIT");
      expect(await verifying).toBe(1);
      expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("pending");
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      other.release();
    }
  });

  it("a URL change waits for a due delivery being written and holds it", async () => {
    const { app, ep } = await setup("active");
    const msg = message(app.id);
    await ctx.store.createMessage(msg, []);
    const other = await postgresAdmin().connect();
    try {
      // The other process's publish: a due row, not yet committed.
      await beginDeliveryWrite(other, msg, ep, "pending");
      const changing = ctx.store.updateEndpoint(
        { ...ep, url: NEW_URL, status: "pending", updatedAt: T0 + 1 },
        { holdQueued: true },
      );
      expect(await stillWaiting(changing)).toBe(true);
      await other.query("COMMIT");
      await changing;
      expect((await ctx.store.getDelivery(msg.id, ep.id))?.status).toBe("held");
    } finally {
      await other.query("ROLLBACK").catch(() => {});
      other.release();
    }
  });
});
