import { type ChildProcess, spawn } from "node:child_process";
import { join, resolve } from "node:path";
import { freePort } from "../helpers/child.js";
import { waitUntil } from "../helpers/sink.js";

const EXAMPLES = resolve(import.meta.dirname, "../../examples");
export const ADMIN_TOKEN = "demo-admin-token";

/** One example process (run through tsx), with its output kept for failure messages. */
export class ExampleProcess {
  private child: ChildProcess | undefined;
  readonly output: string[] = [];

  constructor(
    private readonly script: string,
    private readonly env: Record<string, string>,
    private readonly args: string[] = [],
  ) {}

  start(): void {
    this.child = spawn(process.execPath, ["--import", "tsx", resolve(EXAMPLES, this.script), ...this.args], {
      env: { ...process.env, ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child.stdout?.on("data", (d: Buffer) => this.output.push(d.toString()));
    this.child.stderr?.on("data", (d: Buffer) => this.output.push(d.toString()));
  }

  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    child.kill(signal);
    await exited;
  }
}

export async function getJson<T>(url: string, headers: Record<string, string> = {}): Promise<T | undefined> {
  try {
    const res = await fetch(url, { headers });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

export interface Account {
  employeeId: number;
  holder: string;
  status: string;
}

export async function accounts(port: number): Promise<Account[]> {
  return (await getJson<Account[]>(`http://127.0.0.1:${port}/accounts`)) ?? [];
}

/** Both banks' endpoints verified (active) at the Employee application. */
export async function activeBanks(employeesPort: number): Promise<number> {
  const list = await getJson<{ data: { status: string }[] }>(
    `http://127.0.0.1:${employeesPort}/api/v1/app/employees/endpoint`,
    { authorization: `Bearer ${ADMIN_TOKEN}` },
  );
  return list?.data.filter((e) => e.status === "active").length ?? 0;
}

export async function createEmployee(port: number, n: number): Promise<{ id: number; name: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/employees`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      name: `Employee ${n}`,
      email: `e${n}@example.test`,
      department: "R&D",
      startDate: "2026-12-01",
    }),
  });
  if (res.status !== 201) throw new Error(`POST /employees answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as { id: number; name: string };
}

const FAST_RETRIES = { PIGEON_RETRY_SCHEDULE: "500ms,1s,1s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s,2s" };

/** The Employee application and two banks as separate processes, both banks verified. */
export async function startExampleSystem(cleanup: (() => Promise<void>)[], dir: string) {
  const [ep, b1, b2] = [await freePort(), await freePort(), await freePort()];
  const employees = new ExampleProcess("employees/main.ts", {
    PORT: String(ep),
    DATA_DIR: join(dir, "employees"),
    ...FAST_RETRIES,
  });
  const bank = (port: number) =>
    new ExampleProcess("bank/main.ts", {
      PORT: String(port),
      BANK_NAME: `bank-${port}`,
      DATA_DIR: join(dir, `bank-${port}`),
      EMPLOYEES_URL: `http://127.0.0.1:${ep}`,
    });
  const banks = [bank(b1), bank(b2)];
  employees.start();
  for (const b of banks) b.start();
  cleanup.push(async () => {
    for (const p of [...banks, employees]) await p.stop();
  });
  await waitUntil(async () => (await activeBanks(ep)) === 2, 60_000, "both banks verified");
  return { employees, banks, ports: { employees: ep, banks: [b1, b2] as const } };
}
