import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";

/** Everything a client can get wrong gets a 4xx with a stable code and a message; never a 500. */
describe("bad input", () => {
  let pigeon: TestPigeon;
  let appId: string;
  let endpointId: string;

  beforeAll(async () => {
    pigeon = await startPigeon({ PIGEON_MAX_PAYLOAD_BYTES: "2048" });
    appId = (await pigeon.svix.application.create({ name: "A", uid: "taken" })).id;
    endpointId = (
      await pigeon.svix.endpoint.create(appId, { url: "https://hooks.example.invalid/x", uid: "ep-taken" })
    ).id;
  });
  afterAll(async () => {
    await pigeon.close();
  });

  async function expectError(res: Response, status: number, code: string, mentions?: string) {
    expect(res.status).toBe(status);
    const body = (await res.json()) as { code: string; detail: unknown };
    expect(body.code).toBe(code);
    const text = JSON.stringify(body.detail);
    expect(text.length).toBeGreaterThan(5);
    if (mentions) expect(text).toContain(mentions);
    return body;
  }

  it("malformed JSON → 400 invalid_json", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/app", "{name: oops"),
      400,
      "invalid_json",
      "not valid JSON",
    );
  });

  it("wrong types → 422 naming the field", async () => {
    const body = await expectError(
      await pigeon.request("POST", "/api/v1/app", { name: 42 }),
      422,
      "validation_error",
    );
    expect(body.detail).toEqual([expect.objectContaining({ loc: ["body", "name"] })]);
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
        eventType: "a.b",
        payload: "not an object",
      }),
      422,
      "validation_error",
      "payload",
    );
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg`, { payload: {} }),
      422,
      "validation_error",
      "eventType",
    );
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
        url: "https://x.invalid/",
        rateLimit: -1,
      }),
      422,
      "validation_error",
      "rateLimit",
    );
    await expectError(
      await pigeon.request("POST", "/api/v1/app", { name: "x", surprise: true }),
      422,
      "validation_error",
      "surprise",
    );
  });

  it("missing body → 422", async () => {
    await expectError(await pigeon.request("POST", "/api/v1/app"), 422, "validation_error", "body");
  });

  it("unknown app, endpoint, message → 404", async () => {
    await expectError(await pigeon.request("GET", "/api/v1/app/app_nope"), 404, "not_found", "app_nope");
    await expectError(
      await pigeon.request("POST", "/api/v1/app/nope/msg", { eventType: "a.b", payload: {} }),
      404,
      "not_found",
      "nope",
    );
    await expectError(
      await pigeon.request("GET", `/api/v1/app/${appId}/endpoint/ep_missing`),
      404,
      "not_found",
    );
    await expectError(await pigeon.request("GET", `/api/v1/app/${appId}/msg/msg_missing`), 404, "not_found");
    await expectError(await pigeon.request("GET", "/api/v1/nothing-here"), 404, "not_found");
  });

  it("payload over the limit → 413", async () => {
    const res = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "a.b",
      payload: { big: "x".repeat(4096) },
    });
    await expectError(res, 413, "payload_too_large", "2048");
    const huge = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "a.b",
      payload: { big: "x".repeat(200_000) },
    });
    await expectError(huge, 413, "payload_too_large");
  });

  it("invalid URL → 422", async () => {
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, { url: "not a url" }),
      422,
      "validation_error",
      "url",
    );
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, { url: "ftp://files.example.invalid/x" }),
      422,
      "validation_error",
      "http or https",
    );
  });

  it("bad secret → 422", async () => {
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
        url: "https://x.invalid/",
        secret: "whsec_short",
      }),
      422,
      "validation_error",
      "secret",
    );
  });

  it("duplicate uid → 409", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/app", { name: "B", uid: "taken" }),
      409,
      "conflict",
      "taken",
    );
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
        url: "https://x.invalid/",
        uid: "ep-taken",
      }),
      409,
      "conflict",
      "ep-taken",
    );
  });

  it("a message creating its application takes a path app_id only if it is a valid uid → 422", async () => {
    const body = { eventType: "a.b", payload: {}, application: { name: "On the fly" } };
    const bad = await expectError(
      await pigeon.request("POST", `/api/v1/app/${encodeURIComponent("a b!")}/msg`, body),
      422,
      "validation_error",
      "app_id",
    );
    expect(JSON.stringify(bad.detail)).toContain("uid");
    expect((await pigeon.request("GET", `/api/v1/app/${encodeURIComponent("a b!")}`)).status).toBe(404);
    // A valid path uid, or a uid of its own, creates the application with the message.
    expect((await pigeon.request("POST", "/api/v1/app/on-the-fly/msg", body)).status).toBe(202);
    expect((await pigeon.request("GET", "/api/v1/app/on-the-fly")).status).toBe(200);
    const own = { ...body, application: { name: "Own", uid: "own-uid" } };
    expect((await pigeon.request("POST", `/api/v1/app/${encodeURIComponent("a b!")}/msg`, own)).status).toBe(
      202,
    );
    expect((await pigeon.request("GET", "/api/v1/app/own-uid")).status).toBe(200);
  });

  it("duplicate event type name → 409", async () => {
    const create = () => pigeon.request("POST", "/api/v1/event-type", { name: "dup.type", description: "x" });
    expect((await create()).status).toBe(201);
    await expectError(await create(), 409, "conflict", "dup.type");
  });

  it("duplicate eventId → 409", async () => {
    const first = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "a.b",
      eventId: "e1",
      payload: {},
    });
    expect(first.status).toBe(202);
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg`, {
        eventType: "a.b",
        eventId: "e1",
        payload: {},
      }),
      409,
      "duplicate_event_id",
      "e1",
    );
  });

  it("reserved endpoint headers → 422", async () => {
    await expectError(
      await pigeon.request("PUT", `/api/v1/app/${appId}/endpoint/${endpointId}/headers`, {
        headers: { "webhook-id": "x" },
      }),
      422,
      "validation_error",
      "webhook-id",
    );
  });

  it("a header name no HTTP request can carry → 422 naming it and saying what a name may hold, on every route", async () => {
    const ep = `/api/v1/app/${appId}/endpoint/${endpointId}`;
    const headers = { "x bad": "v" };
    const url = "https://example.invalid/hook";
    for (const [method, path, body] of [
      ["PUT", `${ep}/headers`, { headers }],
      ["PATCH", `${ep}/headers`, { headers }],
      ["PATCH", ep, { headers }],
      ["PUT", ep, { url, headers }],
      ["POST", `/api/v1/app/${appId}/endpoint`, { url, headers }],
    ] as const) {
      const error = await expectError(
        await pigeon.request(method, path, body),
        422,
        "validation_error",
        "must be an HTTP header name",
      );
      expect(error.detail).toEqual([expect.objectContaining({ loc: ["body", "headers", "x bad"] })]);
    }
    // Nothing was stored.
    const stored = (await (await pigeon.request("GET", `${ep}/headers`)).json()) as { headers: object };
    expect(Object.keys(stored.headers)).not.toContain("x bad");
  });

  it("bad query parameters → 422 naming the parameter", async () => {
    await expectError(await pigeon.request("GET", "/api/v1/app?limit=0"), 422, "validation_error", "limit");
    await expectError(
      await pigeon.request("GET", `/api/v1/app/${appId}/msg?before=yesterday`),
      422,
      "validation_error",
      "before",
    );
  });

  it("non-JSON content type → 415", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/app", "name=x", {
        "content-type": "application/x-www-form-urlencoded",
      }),
      415,
      "unsupported_media_type",
    );
  });

  it("wrong method → 405", async () => {
    await expectError(await pigeon.request("DELETE", "/api/v1/app"), 405, "method_not_allowed");
  });

  it("missing or wrong token → 401", async () => {
    const none = await fetch(`${pigeon.baseUrl}/api/v1/app`);
    await expectError(none, 401, "authentication_failed", "Bearer");
    const wrong = await fetch(`${pigeon.baseUrl}/api/v1/app`, { headers: { authorization: "Bearer nope" } });
    await expectError(wrong, 401, "authentication_failed");
    const health = await fetch(`${pigeon.baseUrl}/api/v1/health`);
    expect(health.status).toBe(204);
    // HEAD, as Svix documents for the health check, and as GET on any route.
    expect((await fetch(`${pigeon.baseUrl}/api/v1/health`, { method: "HEAD" })).status).toBe(204);
    const head = await fetch(`${pigeon.baseUrl}/api/v1/app`, {
      method: "HEAD",
      headers: { authorization: "Bearer test-token" },
    });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe("");
  });

  it("a bad query parameter on message create → 422, and nothing is sent", async () => {
    const before = (await (await pigeon.request("GET", `/api/v1/app/${appId}/msg`)).json()) as {
      data: unknown[];
    };
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg?with_content=yes`, {
        eventType: "a.b",
        payload: { n: 1 },
      }),
      422,
      "validation_error",
      "with_content",
    );
    const after = (await (await pigeon.request("GET", `/api/v1/app/${appId}/msg`)).json()) as {
      data: unknown[];
    };
    expect(after.data.length).toBe(before.data.length);
  });

  it("a payload nested deeper than 256 levels → 422 naming the limit, however deep", async () => {
    const nested = (depth: number) =>
      `{"eventType":"a.b","payload":{"a":${"[".repeat(depth - 1)}${"]".repeat(depth - 1)}}}`;
    const ok = await pigeon.request("POST", `/api/v1/app/${appId}/msg`, nested(256), {});
    expect(ok.status).toBe(202);
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg`, nested(257), {}),
      422,
      "validation_error",
      "256",
    );
    // Deep enough that serialising it again overflows the stack (a 500 before), yet within the size limit.
    await expectError(
      await pigeon.request("POST", `/api/v1/app/${appId}/msg`, nested(30_000), {}),
      422,
      "validation_error",
      "256",
    );
  });

  it("a request target that is no URL → 400, not a 500", async () => {
    const { port } = new URL(pigeon.baseUrl);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () =>
        socket.end("GET http://[zz/api/v1/app HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
      );
      let text = "";
      socket.on("data", (d) => {
        text += d.toString();
      });
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 400/);
    expect(answer).toContain("invalid_path");
  });

  it("event-type schemas with an $id can be changed, and two event types may share one", async () => {
    const id = "https://schemas.example.invalid/person.json";
    const create = (name: string, required: string[]) =>
      pigeon.request("POST", "/api/v1/event-type", {
        name,
        description: "x",
        schemas: { "1": { $id: id, type: "object", required } },
      });
    expect((await create("person.created", ["a"])).status).toBe(201);
    const changed = await pigeon.request("PATCH", "/api/v1/event-type/person.created", {
      description: "x",
      schemas: { "1": { $id: id, type: "object", required: ["b"] } },
    });
    expect(changed.status).toBe(200);
    expect((await create("person.deleted", ["c"])).status).toBe(201);
    const publish = (eventType: string, payload: object) =>
      pigeon.request("POST", `/api/v1/app/${appId}/msg`, { eventType, payload });
    // Each event type holds payloads to its own schema, the changed one to its new version.
    expect((await publish("person.created", { b: 1 })).status).toBe(202);
    await expectError(await publish("person.created", { a: 1 }), 422, "validation_error", "b");
    expect((await publish("person.deleted", { c: 1 })).status).toBe(202);
    await expectError(await publish("person.deleted", { b: 1 }), 422, "validation_error", "c");
  });

  it("an asynchronous JSON Schema ($async), which would pass every payload → 422", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/event-type", {
        name: "async.schema",
        description: "x",
        schemas: { "1": { $async: true, type: "object", required: ["a"] } },
      }),
      422,
      "validation_error",
      "$async",
    );
  });

  it("a uid starting with app_ → 400 on every write, not only on create", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/app", { name: "n", uid: "app_fake" }),
      400,
      "invalid_uid",
    );
    await expectError(
      await pigeon.request("PATCH", `/api/v1/app/${appId}`, { uid: "app_fake" }),
      400,
      "invalid_uid",
    );
    await expectError(
      await pigeon.request("PUT", `/api/v1/app/${appId}`, { name: "A", uid: "app_fake" }),
      400,
      "invalid_uid",
    );
    expect(
      ((await (await pigeon.request("GET", `/api/v1/app/${appId}`)).json()) as { uid: string }).uid,
    ).toBe("taken");
  });

  it("PATCH of an event type takes any subset of its fields (Svix's EventTypePatch has none required)", async () => {
    expect(
      (await pigeon.request("POST", "/api/v1/event-type", { name: "patch.me", description: "d" })).status,
    ).toBe(201);
    const patched = await pigeon.request("PATCH", "/api/v1/event-type/patch.me", { archived: true });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({ name: "patch.me", description: "d", archived: true });
    // PUT still replaces the whole event type, so it still needs its description.
    await expectError(
      await pigeon.request("PUT", "/api/v1/event-type/patch.me", { archived: false }),
      422,
      "validation_error",
      "description",
    );
  });

  it("a send that created its application under a uid of its own can be sent again", async () => {
    const send = (n: number) =>
      pigeon.request("POST", "/api/v1/app/sent-again-path/msg", {
        eventType: "a.b",
        payload: { n },
        application: { name: "Made on the fly", uid: "sent-again-own" },
      });
    expect((await send(1)).status).toBe(202);
    expect((await send(2)).status).toBe(202);
    const listed = (await (await pigeon.request("GET", "/api/v1/app/sent-again-own/msg")).json()) as {
      data: unknown[];
    };
    expect(listed.data).toHaveLength(2);
  });

  it("text with an unpaired UTF-16 surrogate → 422, not stored altered; characters beyond the BMP are kept", async () => {
    // Raw JSON text: the escape "\ud800" is a lone surrogate, which no UTF-8 store can keep.
    await expectError(
      await pigeon.request("POST", "/api/v1/app", '{"name":"x\\ud800y"}'),
      422,
      "validation_error",
      "surrogate",
    );
    const kept = await pigeon.request("POST", "/api/v1/app", { name: "bird 🐦" });
    expect(kept.status).toBe(201);
    const { id } = (await kept.json()) as { id: string };
    expect(((await (await pigeon.request("GET", `/api/v1/app/${id}`)).json()) as { name: string }).name).toBe(
      "bird 🐦",
    );
  });

  it("an invalid JSON Schema on an event type → 422", async () => {
    await expectError(
      await pigeon.request("POST", "/api/v1/event-type", {
        name: "bad.schema",
        description: "x",
        schemas: { "1": { type: 12 } },
      }),
      422,
      "validation_error",
      "JSON Schema",
    );
  });
});
