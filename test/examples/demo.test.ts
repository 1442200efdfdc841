import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it } from "vitest";
import { freePort } from "../helpers/child.js";
import { waitUntil } from "../helpers/sink.js";
import { accounts, activeBanks, createEmployee, ExampleProcess, startExampleSystem } from "./processes.js";

describe("the worked example: employees to banks", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  function tempDir(): string {
    const dir = mkdtempSync(join(tmpdir(), "pigeon-demo-"));
    cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
    return dir;
  }

  const startSystem = () => startExampleSystem(cleanup, tempDir());

  it("npm run demo: 200 employees become exactly 200 accounts at each bank", async () => {
    const dir = tempDir();
    const [ep, b1, b2] = [await freePort(), await freePort(), await freePort()];
    const demo = new ExampleProcess(
      "demo.ts",
      {
        DEMO_DATA_DIR: dir,
        DEMO_EMPLOYEES_PORT: String(ep),
        DEMO_BANK_PORTS: `${b1},${b2}`,
      },
      ["--reset"],
    );
    demo.start();
    cleanup.push(() => demo.stop());
    await waitUntil(async () => (await activeBanks(ep)) === 2, 60_000, "both banks verified");

    const started = Date.now();
    const created: number[] = [];
    let n = 0;
    await Promise.all(
      Array.from({ length: 10 }, async () => {
        while (n < 200) created.push((await createEmployee(ep, n++)).id);
      }),
    );
    for (const port of [b1, b2]) {
      await waitUntil(async () => (await accounts(port)).length >= 200, 120_000, `200 accounts at ${port}`);
    }
    console.log(`demo: 200 employees reached both banks in ${Date.now() - started} ms`);
    await new Promise((r) => setTimeout(r, 500));
    for (const port of [b1, b2]) {
      const list = await accounts(port);
      expect(list).toHaveLength(200);
      expect(new Set(list.map((a) => a.employeeId))).toEqual(new Set(created));
    }
  }, 240_000);

  it("a bank down for 10 s gets every employee once; the other bank is not held up", async () => {
    const { banks, ports } = await startSystem();
    await banks[0]!.stop();
    const stoppedAt = Date.now();
    const ids: number[] = [];
    for (let i = 0; i < 50; i++) ids.push((await createEmployee(ports.employees, i)).id);
    // The running bank has them all while the other is still down.
    await waitUntil(
      async () => (await accounts(ports.banks[1])).length === 50,
      9_000,
      "50 accounts at the running bank",
    );
    expect(Date.now() - stoppedAt).toBeLessThan(10_000);
    await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - stoppedAt))));
    banks[0]!.start();
    const restartedAt = Date.now();
    await waitUntil(
      async () => (await accounts(ports.banks[0])).length >= 50,
      90_000,
      "50 accounts after the restart",
    );
    console.log(`demo: restarted bank caught up in ${Date.now() - restartedAt} ms`);
    await new Promise((r) => setTimeout(r, 1000));
    for (const port of ports.banks) {
      const list = await accounts(port);
      expect(list).toHaveLength(50);
      expect(new Set(list.map((a) => a.employeeId))).toEqual(new Set(ids));
    }
  }, 180_000);

  it("the Employee application SIGKILLed right after a burst of 201s: every employee reaches both banks", async () => {
    const { employees, ports } = await startSystem();
    const ids = await Promise.all(
      Array.from({ length: 30 }, (_, i) => createEmployee(ports.employees, 1000 + i).then((e) => e.id)),
    );
    await employees.stop("SIGKILL");
    employees.start();
    for (const port of ports.banks) {
      await waitUntil(async () => (await accounts(port)).length >= 30, 90_000, `30 accounts at ${port}`);
    }
    await new Promise((r) => setTimeout(r, 500));
    for (const port of ports.banks) {
      const list = await accounts(port);
      expect(list).toHaveLength(30);
      expect(new Set(list.map((a) => a.employeeId))).toEqual(new Set(ids));
    }
  }, 180_000);

  it("a tampered or unsigned request to a bank's webhook URL gets 401 and opens no account", async () => {
    const { ports } = await startSystem();
    const url = `http://127.0.0.1:${ports.banks[0]}/webhooks`;
    const body = JSON.stringify({
      type: "employee.created",
      timestamp: new Date().toISOString(),
      data: { id: 999, name: "Mallory", email: "m@x.test" },
    });
    const unsigned = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(unsigned.status).toBe(401);
    const wrongKey = new Webhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
    const headers = {
      "webhook-id": "msg_forged",
      "webhook-timestamp": String(Math.floor(Date.now() / 1000)),
    };
    const forged = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...headers,
        "webhook-signature": wrongKey.sign("msg_forged", new Date(), body),
      },
      body,
    });
    expect(forged.status).toBe(401);
    // A genuine delivery captured and replayed with a changed body is refused too.
    const employee = await createEmployee(ports.employees, 5000);
    await waitUntil(async () => (await accounts(ports.banks[0])).length === 1);
    const tampered = await fetch(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        ...headers,
        "webhook-signature": "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
      },
      body,
    });
    expect(tampered.status).toBe(401);
    await new Promise((r) => setTimeout(r, 500));
    expect((await accounts(ports.banks[0])).map((a) => a.employeeId)).toEqual([employee.id]);
  }, 120_000);
});
