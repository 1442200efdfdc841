import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { startExampleSystem } from "./processes.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A person's view: add an employee on the Employee page, see the account appear at each bank. */
describe("the worked example in a real browser", () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it.skipIf(!existsSync(CHROMIUM) && process.env.CI !== "true")(
    "adding an employee opens an account on each bank's page",
    async () => {
      const dir = mkdtempSync(join(tmpdir(), "pigeon-browser-"));
      cleanup.push(async () => rmSync(dir, { recursive: true, force: true }));
      const { ports } = await startExampleSystem(cleanup, dir);
      const browser: Browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          "--headless",
          "--no-sandbox",
          "--disable-gpu",
          "--disable-quic",
          "--no-first-run",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
        ],
      });
      cleanup.push(() => browser.close());
      const page = await browser.newPage();
      await page.goto(`http://127.0.0.1:${ports.employees}/`);
      await page.getByLabel("Name").fill("Grace Hopper");
      await page.getByLabel("Email").fill("grace@example.test");
      await page.getByLabel("Department").fill("Engineering");
      await page.getByLabel("Start date").fill("2026-12-01");
      await page.getByRole("button", { name: "Add employee" }).click();
      await page.getByRole("cell", { name: "Grace Hopper" }).waitFor({ timeout: 10_000 });

      for (const port of ports.banks) {
        const bankPage = await browser.newPage();
        await bankPage.goto(`http://127.0.0.1:${port}/`);
        const cell = bankPage.getByRole("cell", { name: "Grace Hopper" });
        await cell.waitFor({ timeout: 20_000 });
        expect(await bankPage.locator("tbody tr").count()).toBe(1);
        await bankPage.screenshot({ path: join(dir, `bank-${port}.png`) });
      }
    },
    120_000,
  );
});
