import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";

/** Svix's PUT on an application or event type creates it when missing (201), else updates it (200). */
describe("PUT creates what is missing", () => {
  let pigeon: TestPigeon;
  beforeAll(async () => {
    pigeon = await startPigeon();
  });
  afterAll(async () => {
    await pigeon.close();
  });

  it("creates an application under the path's uid, then updates it", async () => {
    const created = await pigeon.request("PUT", "/api/v1/app/put-made", { name: "Made by PUT" });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ uid: "put-made", name: "Made by PUT" });
    const updated = await pigeon.request("PUT", "/api/v1/app/put-made", { name: "Renamed" });
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({ uid: "put-made", name: "Renamed" });
    // An id names an application that exists or nothing; a path that is no uid is refused.
    expect(
      (await pigeon.request("PUT", "/api/v1/app/app_00000000000000000000000000", { name: "x" })).status,
    ).toBe(404);
    expect(
      (await pigeon.request("PUT", `/api/v1/app/${encodeURIComponent("a b!")}`, { name: "x" })).status,
    ).toBe(422);
  });

  it("creates an event type under the path's name, then updates it", async () => {
    const created = await pigeon.request("PUT", "/api/v1/event-type/put.made", { description: "first" });
    expect(created.status).toBe(201);
    expect(await created.json()).toMatchObject({ name: "put.made", description: "first" });
    const updated = await pigeon.request("PUT", "/api/v1/event-type/put.made", { description: "second" });
    expect(updated.status).toBe(200);
    expect(await updated.json()).toMatchObject({ name: "put.made", description: "second" });
    expect(
      (
        await pigeon.request("PUT", `/api/v1/event-type/${encodeURIComponent("no spaces")}`, {
          description: "x",
        })
      ).status,
    ).toBe(422);
  });
});
