import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NonRetryableError } from "../../src/inbound/retry.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { createSource, type InboxItemBody, inbox, send } from "./helpers.js";

describe("processing: retries, failures, status through the API", () => {
  let p: TestPigeon;
  let sourceId: string;
  let path: string;
  const calls = new Map<string, number>();
  const attempts = new Map<string, number[]>();
  const behaviour = new Map<string, (attempt: number) => Promise<void> | void>();

  beforeAll(async () => {
    p = await startPigeon();
    const s = await createSource(p, {
      name: "flaky",
      provider: "none",
      secrets: [],
      options: {
        eventIdPointer: "/id",
        maxAttempts: 3,
        retryBaseMs: 20,
        retryMaxMs: 50,
        handlerTimeoutMs: 200,
      },
    });
    sourceId = s.id;
    path = s.ingestPath;
    p.engine.inbound.on(
      "*",
      async (e) => {
        const id = e.eventId!;
        calls.set(id, (calls.get(id) ?? 0) + 1);
        attempts.set(id, [...(attempts.get(id) ?? []), e.attempt]);
        await behaviour.get(id)?.(e.attempt);
      },
      { source: s.id },
    );
  });
  afterAll(async () => {
    await p.close();
  });

  async function settled(id: string): Promise<InboxItemBody> {
    let item: InboxItemBody | undefined;
    await waitUntil(
      async () => {
        item = (await inbox(p, sourceId)).find((i) => i.eventId === id);
        return item !== undefined && (item.status === "processed" || item.status === "failed");
      },
      10_000,
      `${id} to settle`,
    );
    return item!;
  }

  const post = (id: string) =>
    send(p, path, JSON.stringify({ id, type: "t" }), { "content-type": "application/json" });

  it("retries a failing handler with backoff until it succeeds", async () => {
    behaviour.set("flaky-1", (attempt) => {
      if (attempt < 3) throw new Error(`down (try ${attempt})`);
    });
    await post("flaky-1");
    const item = await settled("flaky-1");
    expect(item).toMatchObject({ status: "processed", attempts: 3, lastError: null });
    expect(attempts.get("flaky-1")).toEqual([1, 2, 3]);
  });

  it("fails an item after maxAttempts and keeps the last error", async () => {
    behaviour.set("broken-1", (attempt) => {
      throw new Error(`still down (try ${attempt})`);
    });
    await post("broken-1");
    const item = await settled("broken-1");
    expect(item).toMatchObject({ status: "failed", attempts: 3 });
    expect(item.lastError).toContain("still down (try 3)");
    expect(calls.get("broken-1")).toBe(3);
  });

  it("fails at once on NonRetryableError", async () => {
    behaviour.set("refused-1", () => {
      throw new NonRetryableError("this employee id is malformed");
    });
    await post("refused-1");
    const item = await settled("refused-1");
    expect(item).toMatchObject({ status: "failed", attempts: 1 });
    expect(item.lastError).toContain("malformed");
  });

  it("counts a handler past its timeout as a failure", async () => {
    behaviour.set("hung-1", async (attempt) => {
      if (attempt === 1) await new Promise((r) => setTimeout(r, 1000));
    });
    await post("hung-1");
    const item = await settled("hung-1");
    expect(item).toMatchObject({ status: "processed", attempts: 2 });
    expect(calls.get("hung-1")).toBe(2);
  });

  it("processes a failed item again on POST …/retry", async () => {
    let fixed = false;
    behaviour.set("later-1", () => {
      if (!fixed) throw new NonRetryableError("not yet");
    });
    await post("later-1");
    const failed = await settled("later-1");
    expect(failed.status).toBe("failed");
    const notRetryable = await p.request(
      "POST",
      `/api/v1/source/${sourceId}/inbox/${(await inbox(p, sourceId)).find((i) => i.status === "processed")!.id}/retry`,
    );
    expect(notRetryable.status).toBe(409);
    fixed = true;
    expect((await p.request("POST", `/api/v1/source/${sourceId}/inbox/${failed.id}/retry`)).status).toBe(202);
    await waitUntil(
      async () => (await inbox(p, sourceId)).find((i) => i.id === failed.id)?.status === "processed",
      10_000,
      "the retried item",
    );
    // A retry starts with fresh attempts.
    expect(attempts.get("later-1")).toEqual([1, 1]);
  });

  it("filters the inbox by status and pages through it", async () => {
    const failed = await inbox(p, sourceId, "&status=failed");
    expect(failed.length).toBeGreaterThanOrEqual(2);
    expect(failed.every((i) => i.status === "failed")).toBe(true);
    const first = (await (await p.request("GET", `/api/v1/source/${sourceId}/inbox?limit=2`)).json()) as {
      data: InboxItemBody[];
      iterator: string;
      done: boolean;
    };
    expect(first.data).toHaveLength(2);
    expect(first.done).toBe(false);
    expect(first.data[0]).not.toHaveProperty("body");
    const second = (await (
      await p.request("GET", `/api/v1/source/${sourceId}/inbox?limit=2&iterator=${first.iterator}`)
    ).json()) as { data: InboxItemBody[] };
    expect(second.data[0]!.id < first.data[1]!.id).toBe(true);
    expect((await p.request("GET", `/api/v1/source/${sourceId}/inbox?status=bogus`)).status).toBe(422);
  });

  it("keeps items queued while nothing can take them, and hands them on once a handler exists", async () => {
    const s = await createSource(p, {
      uid: "unhandled",
      name: "unhandled",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id" },
    });
    await send(p, s.ingestPath, JSON.stringify({ id: "waiting-1", type: "t" }), {
      "content-type": "application/json",
    });
    await new Promise((r) => setTimeout(r, 300));
    expect((await inbox(p, s.id)).map((i) => i.status)).toEqual(["received"]);
    const seen: string[] = [];
    p.engine.inbound.on(
      "*",
      (e) => {
        seen.push(e.eventId!);
      },
      { source: "unhandled" },
    );
    await waitUntil(() => seen.length === 1, 10_000, "the late handler");
    expect(seen).toEqual(["waiting-1"]);
  });

  it("shows per-status counts on the source", async () => {
    const source = (await (await p.request("GET", `/api/v1/source/${sourceId}`)).json()) as {
      stats: Record<string, number>;
    };
    expect(source.stats.processed).toBeGreaterThanOrEqual(3);
    expect(source.stats.failed).toBeGreaterThanOrEqual(2);
  });
});
