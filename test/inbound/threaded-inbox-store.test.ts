import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PigeonError } from "../../src/core/errors.js";
import { InboxThread } from "../../src/inbound/store/inbox-thread-client.js";
import type { ThreadedInboxStore } from "../../src/inbound/store/threaded-inbox-store.js";
import { T0, testItem, testSource, threadedInboxIn } from "../helpers/inbox.js";

const source = (id: string, uid: string | null = null) => testSource(id, { uid });
const item = (eventId: string | null, body = "{}") => testItem("src_a", { eventId, body: Buffer.from(body) });

/**
 * What only the threaded SQLite inbox does (its InboxStore contract is in
 * inbox-store.conformance.test.ts, which runs on it): errors that cross the thread, inserts of one
 * moment merged into one commit, and a thread that dies.
 */
describe("ThreadedInboxStore", () => {
  let dir: string;
  let store: ThreadedInboxStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-threaded-inbox-"));
    store = threadedInboxIn(dir);
    await store.createSource(source("src_a", "github"));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("turns a duplicate uid into the API's 409, not a 500", async () => {
    const error = await store.createSource(source("src_b", "github")).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PigeonError);
    expect((error as PigeonError).status).toBe(409);
    expect((error as PigeonError).code).toBe("duplicate_uid");
  });

  it("answers inserts posted at once in order, de-duplicating across them, bodies as Buffers", async () => {
    const [first, second, third] = await Promise.all([
      store.insertItems([item("evt_1", '{"n":1}'), item("evt_2")]),
      store.insertItems([item("evt_1", '{"n":2}')]),
      store.insertItems([item(null)]),
    ]);
    expect(first!.map((o) => o.status)).toEqual(["received", "received"]);
    expect(second).toEqual([{ id: expect.any(String), status: "duplicate", duplicateOf: first![0]!.id }]);
    expect(third!.map((o) => o.status)).toEqual(["received"]);
    const stored = await store.getItem("src_a", first![0]!.id);
    expect(Buffer.isBuffer(stored?.body)).toBe(true);
    expect(stored?.body.toString()).toBe('{"n":1}');
  });

  it("gives taken items back when the insert did not store them as new", async () => {
    await store.insertItems([item("evt_9")]);
    const taken: string[] = [];
    const untaken: string[] = [];
    const fresh = item("evt_10");
    const copy = item("evt_9");
    const outcomes = await store.insertItems([fresh, copy], {
      leaseUntil: T0 + 60_000,
      take: (i) => {
        taken.push(i.id);
        return true;
      },
      untake: (id) => untaken.push(id),
    });
    expect(taken).toEqual([fresh.id, copy.id]);
    expect(untaken).toEqual([copy.id]);
    expect(outcomes[0]).toMatchObject({
      status: "received",
      claimed: { item: { id: fresh.id, status: "processing" } },
    });
    expect(outcomes[1]).toMatchObject({ status: "duplicate" });
  });

  it("sends outcomes along with the next insert while requests arrive, and alone when none comes", async () => {
    const methods: string[] = [];
    const call = InboxThread.prototype.call;
    InboxThread.prototype.call = function <T>(this: InboxThread, method: string, args: unknown[]) {
      methods.push(method);
      return call.call(this, method, args) as Promise<T>;
    };
    try {
      const handoff = { leaseUntil: T0 + 60_000, take: () => true, untake: () => undefined };
      const taken = await store.insertItems([item("evt_r1"), item("evt_r2")], handoff);
      const [first, second] = taken.map((o) => o.id);
      methods.length = 0;
      // An insert was just sent: the outcome waits for the next one and commits in its transaction.
      const recorded = store.completeItems(
        [{ id: first!, sourceId: "src_a", result: "processed", stale: false }],
        T0,
      );
      await store.insertItems([item("evt_r3")]);
      await recorded;
      expect(methods).toEqual(["insertItems"]);
      expect((await store.getItem("src_a", first!))?.status).toBe("processed");
      // No insert follows: the outcome goes on its own within the ride window.
      methods.length = 0;
      await store.completeItems([{ id: second!, sourceId: "src_a", result: "processed", stale: false }], T0);
      expect(methods).toEqual(["completeItems"]);
      expect((await store.getItem("src_a", second!))?.status).toBe("processed");
    } finally {
      InboxThread.prototype.call = call;
    }
  });

  it("fails the calls a dying thread had, then carries on with a new one", async () => {
    const before = await store.insertItems([item("evt_a")]);
    const inFlight = expect(store.insertItems([item("evt_b")])).rejects.toThrow(/inbox thread/);
    await InboxThread.terminate();
    await inFlight;
    // The next call starts a thread, opens the file there again, and sees what was committed.
    const again = await store.insertItems([item("evt_a"), item("evt_c")]);
    expect(again.map((o) => o.status)).toEqual(["duplicate", "received"]);
    expect(again[0]).toMatchObject({ duplicateOf: before[0]!.id });
  });
});
