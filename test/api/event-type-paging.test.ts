import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";

describe("event-type pages", () => {
  let pigeon: TestPigeon;
  beforeAll(async () => {
    pigeon = await startPigeon();
  });
  afterAll(async () => {
    await pigeon.close();
  });

  it("pages through names that start with '-' to the end, each once", async () => {
    const names = ["-a", "-b", "-c", "d.e"];
    for (const name of names)
      expect((await pigeon.request("POST", "/api/v1/event-type", { name, description: "x" })).status).toBe(
        201,
      );
    const seen: string[] = [];
    let iterator: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const res = await pigeon.request(
        "GET",
        `/api/v1/event-type?limit=1${iterator === null ? "" : `&iterator=${encodeURIComponent(iterator)}`}`,
      );
      const page = (await res.json()) as { data: { name: string }[]; iterator: string | null; done: boolean };
      seen.push(...page.data.map((e) => e.name));
      if (page.done) break;
      iterator = page.iterator;
    }
    expect(seen).toEqual(names);
  });
});
