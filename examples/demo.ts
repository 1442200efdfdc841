/**
 * `npm run demo`: the Employee Management application on :3000 and two banks on :3101 and :3102,
 * each its own process (so any one can be stopped and restarted). Ctrl-C stops all.
 * `--reset` starts from empty data. Ports and the data folder can be moved with
 * DEMO_EMPLOYEES_PORT, DEMO_BANK_PORTS (comma-separated) and DEMO_DATA_DIR.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";

const here = import.meta.dirname;
const dataDir = resolve(process.env.DEMO_DATA_DIR ?? ".demo");
const employeesPort = Number(process.env.DEMO_EMPLOYEES_PORT ?? 3000);
const bankPorts = (process.env.DEMO_BANK_PORTS ?? "3101,3102").split(",").map(Number);

if (process.argv.includes("--reset")) rmSync(dataDir, { recursive: true, force: true });

const children: ChildProcess[] = [];

function start(name: string, script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", join(here, script)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const prefix = (text: Buffer) =>
    text
      .toString()
      .split("\n")
      .filter(Boolean)
      .map((line) => `[${name}] ${line}`)
      .join("\n");
  child.stdout?.on("data", (d: Buffer) => console.log(prefix(d)));
  child.stderr?.on("data", (d: Buffer) => console.error(prefix(d)));
  children.push(child);
  return child;
}

start("employees", "employees/main.ts", {
  PORT: String(employeesPort),
  DATA_DIR: join(dataDir, "employees"),
});
for (const port of bankPorts) {
  start(`bank-${port}`, "bank/main.ts", {
    PORT: String(port),
    BANK_NAME: `bank-${port}`,
    DATA_DIR: join(dataDir, `bank-${port}`),
    EMPLOYEES_URL: `http://127.0.0.1:${employeesPort}`,
  });
}

console.log("Pigeon demo");
console.log(`  Employee Management: http://127.0.0.1:${employeesPort}`);
for (const port of bankPorts) console.log(`  Bank bank-${port}:      http://127.0.0.1:${port}`);
console.log("Ctrl-C stops all.");

let stopping = false;
function stopAll(): void {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => process.exit(0), 3000).unref();
  Promise.all(
    children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once("exit", r)))),
  ).then(() => process.exit(0));
}
process.on("SIGINT", stopAll);
process.on("SIGTERM", stopAll);
