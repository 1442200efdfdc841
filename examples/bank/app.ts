import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createReceiver, type Receiver } from "../../src/receiver/index.js";
import { generateSecret } from "../../src/signing/secrets.js";
import { Accounts } from "./accounts.js";
import { accountsPage } from "./page.js";

export interface BankOptions {
  name: string;
  port: number;
  dataDir: string;
  /** Where the Employee Management application runs, e.g. http://127.0.0.1:3000. */
  employeesUrl: string;
  registrationToken: string;
}

interface EmployeeEvent {
  type: string;
  timestamp: string;
  data: { id: number; name: string; email: string };
}

/** The webhook secret is the bank's own, kept across restarts so its registration stays valid. */
function loadSecret(dataDir: string): string {
  const path = join(dataDir, "webhook-secret");
  if (existsSync(path)) return readFileSync(path, "utf8").trim();
  const secret = generateSecret();
  writeFileSync(path, `${secret}\n`, { mode: 0o600 });
  return secret;
}

/**
 * A Bank application: it registers its webhook with the Employee application on start, receives
 * through Pigeon's receiver (verify → durable inbox → 2xx → handler), and opens one account per
 * employee, closing it on employee.deleted.
 */
export async function startBank(
  options: BankOptions,
): Promise<{ server: Server; port: number; receiver: Receiver; stop(): Promise<void> }> {
  mkdirSync(options.dataDir, { recursive: true });
  const secret = loadSecret(options.dataDir);
  const accounts = new Accounts(join(options.dataDir, "accounts.db"));
  const receiver = createReceiver({
    provider: "standard-webhooks",
    secrets: secret,
    inboxPath: join(options.dataDir, "inbox.db"),
    name: options.name,
    concurrency: 4,
    // Per employee, an event older than one already handled (say a late employee.created after
    // employee.deleted) is stale and skipped.
    orderingKey: { pointer: "/data/id" },
    eventTime: { pointer: "/timestamp" },
    retryBaseMs: 200,
    handler: (event) => {
      const body = event.json<EmployeeEvent>();
      const employee = body.data;
      if (body.type === "employee.created") accounts.open(employee.id, employee.name, employee.email);
      else if (body.type === "employee.updated") accounts.rename(employee.id, employee.name, employee.email);
      else if (body.type === "employee.deleted") accounts.close(employee.id);
    },
  });

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://bank.invalid");
    if (url.pathname === "/webhooks") return receiver(req, res);
    if (req.method === "GET" && url.pathname === "/accounts") {
      const text = JSON.stringify(accounts.list());
      res.writeHead(200, { "content-type": "application/json" });
      return res.end(text);
    }
    if (req.method === "GET" && url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      return res.end(accountsPage(options.name));
    }
    res.writeHead(404, { "content-type": "application/json" });
    res.end(JSON.stringify({ code: "not_found", detail: `No route for ${req.method} ${url.pathname}.` }));
  });
  await new Promise<void>((resolve) => server.listen(options.port, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  await receiver.start();
  await register(options, `http://127.0.0.1:${port}/webhooks`, secret);
  return {
    server,
    port,
    receiver,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await receiver.stop();
      accounts.closeDb();
    },
  };
}

/** Registers (idempotently, by uid) with the Employee application, retrying until it answers. */
async function register(options: BankOptions, url: string, secret: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${options.employeesUrl}/webhooks/register`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${options.registrationToken}` },
        body: JSON.stringify({ url, uid: options.name, secret, filterTypes: ["employee.*"] }),
      });
      if (res.ok) return;
      throw new Error(`registration answered ${res.status}: ${await res.text()}`);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}
