import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApplication, createEndpoint, PigeonError } from "../../src/index.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";

/** What a call threw, or a failure when it did not throw. */
async function refusal(call: () => Promise<unknown>): Promise<PigeonError> {
  try {
    await call();
  } catch (error) {
    expect(error).toBeInstanceOf(PigeonError);
    return error as PigeonError;
  }
  throw new Error("the call was accepted");
}

describe("embedded API (the package's createApplication and createEndpoint)", () => {
  let pigeon: TestPigeon;

  beforeEach(async () => {
    pigeon = await startPigeon();
  });
  afterEach(async () => {
    await pigeon.close();
  });

  it("checks input by the HTTP API's schemas, answers with its error, and stores nothing it refuses", async () => {
    const nul = await refusal(() => createApplication(pigeon.engine, { name: "Pay\u0000roll" }));
    expect([nul.status, nul.code]).toEqual([422, "validation_error"]);
    expect(nul.message).toContain("input.name: must not contain the NUL character");
    expect((await pigeon.svix.application.list()).data).toEqual([]);

    const app = await createApplication(pigeon.engine, { name: "Payroll", uid: "payroll" });
    expect(app.uid).toBe("payroll");

    const url = await refusal(() => createEndpoint(pigeon.engine, app, { url: "not a url" }));
    expect([url.status, url.code]).toEqual([422, "validation_error"]);
    expect(url.message).toContain("input.url");
    const secret = await refusal(() =>
      createEndpoint(pigeon.engine, app, { url: "https://bank.invalid/hooks", secret: "short" }),
    );
    expect(secret.message).toContain("input.secret");
    const extra = await refusal(() =>
      createEndpoint(pigeon.engine, app, { url: "https://bank.invalid/hooks", colour: "red" } as never),
    );
    expect(extra.message).toContain("input.colour: unknown field");
    expect((await pigeon.svix.endpoint.list(app.id)).data).toEqual([]);

    const endpoint = await createEndpoint(pigeon.engine, app, { url: "https://bank.invalid/hooks" });
    expect((await pigeon.svix.endpoint.list(app.id)).data.map((e) => e.id)).toEqual([endpoint.id]);
  });
});
