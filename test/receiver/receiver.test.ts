import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { SqliteInboxStore } from "../../src/inbound/store/sqlite-inbox-store.js";
import type { InboundEvent } from "../../src/inbound/types.js";
import { createReceiver, type Receiver, type ReceiverOptions } from "../../src/receiver/index.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { waitUntil } from "../helpers/sink.js";
import { signStandard, whsec } from "../inbound/helpers.js";

interface Mounted {
  receiver: Receiver;
  server: Server;
  url: string;
  close(): Promise<void>;
}

/** A plain node:http app with the receiver mounted at /webhooks; anything else is the app's. */
async function mount(options: ReceiverOptions): Promise<Mounted> {
  const receiver = createReceiver(options);
  const server = createServer((req, res) => {
    if (req.url?.startsWith("/webhooks")) return receiver(req, res);
    res.writeHead(404);
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/webhooks`;
  return {
    receiver,
    server,
    url,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await receiver.stop();
    },
  };
}

describe("createReceiver", () => {
  const dirs: string[] = [];
  const mounted: Mounted[] = [];
  const tempFile = () => {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-receiver-"));
    dirs.push(dir);
    return join(dir, "inbox.db");
  };
  afterEach(async () => {
    for (const m of mounted.splice(0)) await m.close();
  });
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  });

  describe("receiving from a Pigeon server", () => {
    let p: TestPigeon;
    beforeAll(async () => {
      p = await startPigeon();
    });
    afterAll(async () => {
      await p.close();
    });

    it("answers the registration handshake, then hands each message to the handler once", async () => {
      const secret = whsec();
      const events: InboundEvent[] = [];
      const m = await mount({
        secrets: secret,
        inboxPath: tempFile(),
        handler: (e) => void events.push(e),
        concurrency: 2,
      });
      mounted.push(m);
      await m.receiver.start();

      const app = (await (
        await p.request("POST", "/api/v1/app", { name: "Employees", handshake: "required" })
      ).json()) as { id: string };
      const ep = (await (
        await p.request("POST", `/api/v1/app/${app.id}/endpoint`, { url: m.url, secret })
      ).json()) as { id: string };
      await waitUntil(
        async () =>
          (
            (await (await p.request("GET", `/api/v1/app/${app.id}/endpoint/${ep.id}`)).json()) as {
              status: string;
            }
          ).status === "active",
        10_000,
        "the handshake",
      );
      const msgIds: string[] = [];
      for (let i = 0; i < 3; i++) {
        const res = await p.request("POST", `/api/v1/app/${app.id}/msg`, {
          eventType: "employee.created",
          payload: { type: "employee.created", data: { n: i } },
        });
        msgIds.push(((await res.json()) as { id: string }).id);
      }
      await waitUntil(() => events.length === 3, 10_000, "three events");
      expect(events.map((e) => e.eventId).sort()).toEqual([...msgIds].sort());
      expect(
        events.every((e) => e.eventType === "employee.created" && e.source.provider === "standard-webhooks"),
      ).toBe(true);
      expect(events.map((e) => e.json<{ data: { n: number } }>().data.n).sort()).toEqual([0, 1, 2]);

      // Pigeon resends with the same webhook-id: acknowledged, recorded, not handled again.
      const resend = await p.request(
        "POST",
        `/api/v1/app/${app.id}/msg/${msgIds[0]}/endpoint/${ep.id}/resend`,
      );
      expect(resend.status).toBeLessThan(300);
      await waitUntil(
        async () => (await m.receiver.items("duplicate")).length === 1,
        10_000,
        "the resend to arrive",
      );
      await new Promise((r) => setTimeout(r, 200));
      expect(events).toHaveLength(3);
    });
  });

  it("refuses bad signatures with 401 and never calls the handler", async () => {
    const secret = whsec();
    const events: InboundEvent[] = [];
    const m = await mount({ secrets: [secret], inboxPath: tempFile(), handler: (e) => void events.push(e) });
    mounted.push(m);
    await m.receiver.start();
    const body = JSON.stringify({ type: "x" });
    const bad = await fetch(m.url, { method: "POST", body, headers: signStandard(whsec(), "msg_1", body) });
    expect(bad.status).toBe(401);
    expect(((await bad.json()) as { code: string }).code).toBe("invalid_signature");
    const good = await fetch(m.url, { method: "POST", body, headers: signStandard(secret, "msg_1", body) });
    expect(good.status).toBe(200);
    await waitUntil(async () => (await m.receiver.items("processed")).length === 1, 5_000, "the good one");
    expect(events).toHaveLength(1);
    expect((await m.receiver.items()).map((i) => i.status)).toEqual(["processed"]);
  });

  it("keeps what it acknowledged across a restart and handles it after", async () => {
    const secret = whsec();
    const file = tempFile();
    const first = await mount({ secrets: secret, inboxPath: file, handler: () => undefined });
    // Not started: the app went down before handling anything.
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = JSON.stringify({ type: "employee.created", i });
      const res = await fetch(first.url, {
        method: "POST",
        body,
        headers: signStandard(secret, `msg_${i}`, body),
      });
      expect(res.status).toBe(200);
      ids.push(`msg_${i}`);
    }
    await first.close();

    const handled: string[] = [];
    const second = await mount({
      secrets: secret,
      inboxPath: file,
      handler: (e) => void handled.push(e.eventId!),
    });
    mounted.push(second);
    await second.receiver.start();
    await waitUntil(() => handled.length === 5, 5_000, "the backlog");
    expect(handled.sort()).toEqual(ids.sort());
    // And a re-send after the restart is still recognised as a duplicate.
    const body = JSON.stringify({ type: "employee.created", i: 0 });
    const again = await fetch(second.url, {
      method: "POST",
      body,
      headers: signStandard(secret, "msg_0", body),
    });
    expect(again.headers.get("pigeon-inbox-status")).toBe("duplicate");
  });

  it("is stale-aware with an ordering key", async () => {
    const secret = whsec();
    const handled: string[] = [];
    const m = await mount({
      secrets: secret,
      inboxPath: tempFile(),
      handler: (e) => void handled.push(e.eventId!),
      orderingKey: { pointer: "/data/account" },
      eventTime: { pointer: "/data/version" },
    });
    mounted.push(m);
    await m.receiver.start();
    const post = (id: string, version: number) => {
      const body = JSON.stringify({ type: "balance.updated", data: { account: "acc-1", version } });
      return fetch(m.url, { method: "POST", body, headers: signStandard(secret, id, body) });
    };
    // Versions as epoch seconds: any number works as an ordering time.
    await post("v2", 2_000_000_000);
    await waitUntil(() => handled.length === 1, 5_000, "v2");
    await post("v1", 1_000_000_000);
    await waitUntil(async () => (await m.receiver.items("stale")).length === 1, 5_000, "v1 marked stale");
    expect(handled).toEqual(["v2"]);
  });

  it("retries a failing handler and reports the failure in the inbox", async () => {
    const secret = whsec();
    let calls = 0;
    const m = await mount({
      secrets: secret,
      inboxPath: tempFile(),
      maxAttempts: 2,
      retryBaseMs: 10,
      handler: () => {
        calls++;
        throw new Error("bank core is down");
      },
    });
    mounted.push(m);
    await m.receiver.start();
    const body = JSON.stringify({ type: "t" });
    await fetch(m.url, { method: "POST", body, headers: signStandard(secret, "msg_f", body) });
    await waitUntil(async () => (await m.receiver.items("failed")).length === 1, 5_000, "the failure");
    const [item] = await m.receiver.items("failed");
    expect(item).toMatchObject({ attempts: 2 });
    expect(item!.lastError).toContain("bank core is down");
    expect(calls).toBe(2);
  });

  it("keeps an in-memory inbox on its one connection and closes it on stop", async () => {
    const secret = whsec();
    const events: InboundEvent[] = [];
    const m = await mount({ secrets: [secret], inboxPath: ":memory:", handler: (e) => void events.push(e) });
    await m.receiver.start();
    const body = JSON.stringify({ type: "employee.created" });
    const res = await fetch(m.url, { method: "POST", body, headers: signStandard(secret, "msg_mem", body) });
    expect(res.status).toBe(200);
    await waitUntil(async () => (await m.receiver.items("processed")).length === 1, 5_000, "the event");
    expect(events.map((e) => e.eventId)).toEqual(["msg_mem"]);
    const { db } = m.receiver.inbox as SqliteInboxStore;
    expect(db.memory).toBe(true);
    await m.close();
    expect(db.open).toBe(false);
  });

  it("refuses bad options with a message saying what to fix", () => {
    expect(() => createReceiver({ secrets: [], inboxPath: tempFile(), handler: () => undefined })).toThrow(
      /at least one secret/,
    );
    expect(() =>
      createReceiver({
        secrets: "s",
        inboxPath: tempFile(),
        handler: () => undefined,
        orderingKey: { pointer: "nope" },
      }),
    ).toThrow(/orderingKey\.pointer: must be a JSON pointer/);
    expect(() => createReceiver({ secrets: "s", inboxPath: "", handler: () => undefined })).toThrow(
      /inboxPath/,
    );
  });
});
