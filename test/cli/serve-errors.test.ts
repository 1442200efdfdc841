import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { describeBackend, POSTGRES_TEST_URL } from "../helpers/backends.js";
import { CLI } from "../helpers/child.js";

/** Runs `pigeon serve` to its exit and returns what it said on stderr and its exit code. */
function serve(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [CLI, "serve", ...args],
      { env: { ...process.env, ...env }, timeout: 20_000 },
      (_error, _stdout, stderr) => resolve({ code: child.exitCode, stderr }),
    );
  });
}

describe("pigeon serve: start-up failures name the setting to fix", () => {
  let dir: string;
  let env: Record<string, string>;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "pigeon-cli-"));
    env = { PIGEON_DATA_DIR: dir, PIGEON_AUTH_TOKEN: "cli-test-token" };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("a port already in use: exit 1, naming --port", async () => {
    const taken: Server = createServer();
    await new Promise<void>((r) => taken.listen(0, "127.0.0.1", r));
    const port = (taken.address() as { port: number }).port;
    try {
      const { code, stderr } = await serve(["--host", "127.0.0.1", "--port", String(port)], env);
      expect(code).toBe(1);
      expect(stderr.trim()).toBe(
        `pigeon: could not start: port ${port} on 127.0.0.1 is already in use: choose another with --port (or PIGEON_PORT)`,
      );
    } finally {
      await new Promise<void>((r) => taken.close(() => r()));
    }
  });
});

describeBackend("postgres", "pigeon serve: a PostgreSQL it cannot open", () => {
  it("names the database (without its password) and --database, and exits 1", async () => {
    const url = new URL(POSTGRES_TEST_URL);
    url.username = "no_such_role_pigeon";
    url.password = "hunter2";
    const dir = mkdtempSync(join(tmpdir(), "pigeon-cli-"));
    try {
      const { code, stderr } = await serve(["--host", "127.0.0.1", "--port", "0", "--database", url.href], {
        PIGEON_DATA_DIR: dir,
        PIGEON_AUTH_TOKEN: "cli-test-token",
      });
      expect(code).toBe(1);
      expect(stderr).toContain(
        "pigeon: could not start: cannot open the database postgres://no_such_role_pigeon:***@",
      );
      expect(stderr).toContain("(--database or PIGEON_DATABASE_URL)");
      expect(stderr).toContain('role "no_such_role_pigeon" does not exist');
      expect(stderr).not.toContain("hunter2");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
