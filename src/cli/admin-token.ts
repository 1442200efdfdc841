import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The admin token: PIGEON_AUTH_TOKEN when set; otherwise one generated on first start, kept in
 * the data folder (mode 0600) and printed once, so a restart keeps the same token.
 */
export function resolveAdminToken(
  configured: string | undefined,
  dataDir: string,
): { token: string; generated: boolean; path?: string } {
  if (configured) return { token: configured, generated: false };
  const path = join(dataDir, "admin-token");
  if (existsSync(path)) return { token: readFileSync(path, "utf8").trim(), generated: false, path };
  mkdirSync(dataDir, { recursive: true });
  const token = `pgn_${randomBytes(24).toString("base64url")}`;
  writeFileSync(path, `${token}\n`, { mode: 0o600 });
  return { token, generated: true, path };
}
