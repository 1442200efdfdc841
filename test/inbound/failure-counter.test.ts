import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FailureCounter } from "../../src/inbound/failure-counter.js";
import type { InboxStore } from "../../src/inbound/store/inbox-store.js";
import type { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import { sqliteInboxIn, T0, testSource } from "../helpers/inbox.js";

describe("FailureCounter", () => {
  let dir: string;
  let store: SqliteInboxStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-failures-"));
    store = sqliteInboxIn(dir);
    await store.createSource(testSource("src_a"));
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("a flush waits for the write an earlier flush still has under way", async () => {
    // The real inbox, its counter writes held back 100 ms: the timer's flush is still writing when
    // the API asks for the counts.
    const slow: InboxStore = Object.create(store) as InboxStore;
    slow.addVerifyFailures = async (tallies) => {
      await new Promise((r) => setTimeout(r, 100));
      return store.addVerifyFailures(tallies);
    };
    const counter = new FailureCounter(slow, 60_000);
    for (let i = 0; i < 3; i++) counter.record("src_a", "invalid_signature", T0 + i);
    const timerFlush = counter.flush();
    await counter.flush();
    const stats = await store.sourceStats("src_a");
    expect(stats.verifyFailures).toBe(3);
    expect(stats.lastVerifyFailureCode).toBe("invalid_signature");
    await timerFlush;
  });
});
