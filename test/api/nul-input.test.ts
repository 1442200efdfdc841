import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeBackends } from "../helpers/backends.js";
import { startPigeonOn, type TestPigeon } from "../helpers/pigeon.js";
import { Sink, waitUntil } from "../helpers/sink.js";
import { createSource, type InboxItemBody, inbox, send } from "../inbound/helpers.js";

/**
 * NUL (U+0000) in anything a client or a sender controls. PostgreSQL text cannot hold it (a
 * statement binding it fails with `invalid byte sequence for encoding "UTF8": 0x00`, and a `json`
 * value's `\u0000` cannot be turned back into text), while SQLite stores it. Whatever arrives, the
 * answer is a 4xx naming what to fix or a success that loses nothing, the same on both backends:
 * never a 500, a request refused for ever, or an inbox item retried for ever.
 */

describeBackends("NUL in what clients and senders send", (backend) => {
  let p: TestPigeon;
  let cleanup: () => Promise<void>;
  let sink: Sink;
  let appId: string;
  let endpointId: string;
  let sourceId: string;

  beforeAll(async () => {
    ({ pigeon: p, cleanup } = await startPigeonOn(backend));
    sink = await Sink.start();
    const app = await p.request("POST", "/api/v1/app", { name: "Nul", uid: "nul-app" });
    expect(app.status).toBe(201);
    appId = ((await app.json()) as { id: string }).id;
    const endpoint = await p.request("POST", `/api/v1/app/${appId}/endpoint`, {
      url: sink.url(),
      uid: "nul-ep",
      description: "before",
    });
    expect(endpoint.status).toBe(201);
    endpointId = ((await endpoint.json()) as { id: string }).id;
    const et = await p.request("POST", "/api/v1/event-type", { name: "nul.plain", description: "before" });
    expect(et.status).toBe(201);
    sourceId = (await createSource(p, { name: "before", uid: "nul-src", provider: "none", secrets: [] })).id;
  });
  afterAll(async () => {
    await sink?.close();
    await cleanup?.();
  });

  async function expectNulRefused(res: Response, loc: (string | number)[]): Promise<void> {
    const text = await res.text();
    expect(res.status, text).toBe(422);
    const body = JSON.parse(text) as {
      code: string;
      detail: { loc: unknown[]; msg: string; type: string }[];
    };
    expect(body.code).toBe("validation_error");
    expect(body.detail).toContainEqual(expect.objectContaining({ loc, msg: expect.stringMatching(/NUL/) }));
  }

  it("refuses NUL in names, descriptions, ids and endpoint headers with a 422 naming the field", async () => {
    const ep = `/api/v1/app/${appId}/endpoint/${endpointId}`;
    const cases: [string, string, unknown, (string | number)[]][] = [
      ["POST", "/api/v1/app", { name: "a\u0000b" }, ["body", "name"]],
      ["PUT", `/api/v1/app/${appId}`, { name: "a\u0000" }, ["body", "name"]],
      ["PATCH", `/api/v1/app/${appId}`, { name: "\u0000" }, ["body", "name"]],
      [
        "POST",
        "/api/v1/app/made-on-the-fly/msg",
        { eventType: "nul.plain", payload: {}, application: { name: "a\u0000" } },
        ["body", "application", "name"],
      ],
      ["POST", "/api/v1/event-type", { name: "nul.desc", description: "a\u0000" }, ["body", "description"]],
      [
        "POST",
        "/api/v1/event-type",
        { name: "nul.flag", description: "", featureFlag: "f\u0000" },
        ["body", "featureFlag"],
      ],
      ["PATCH", "/api/v1/event-type/nul.plain", { description: "\u0000" }, ["body", "description"]],
      ["PUT", "/api/v1/event-type/nul.plain", { description: "x\u0000" }, ["body", "description"]],
      [
        "POST",
        `/api/v1/app/${appId}/endpoint`,
        { url: sink.url(), description: "a\u0000" },
        ["body", "description"],
      ],
      ["PATCH", ep, { description: "\u0000" }, ["body", "description"]],
      ["PUT", ep, { url: sink.url(), description: "\u0000" }, ["body", "description"]],
      // An endpoint header that cannot be sent would fail every delivery: refused up front.
      [
        "POST",
        `/api/v1/app/${appId}/endpoint`,
        { url: sink.url(), headers: { "x-a": "a\u0000b" } },
        ["body", "headers", "x-a"],
      ],
      [
        "POST",
        `/api/v1/app/${appId}/endpoint`,
        { url: sink.url(), headers: { "x-\u0000": "v" } },
        ["body", "headers", "x-\u0000"],
      ],
      ["PATCH", ep, { headers: { "x-a": "\u0000" } }, ["body", "headers", "x-a"]],
      ["PUT", `${ep}/headers`, { headers: { "x-a": "a\u0000" } }, ["body", "headers", "x-a"]],
      ["PATCH", `${ep}/headers`, { headers: { "x-a": "a\u0000" } }, ["body", "headers", "x-a"]],
      ["PATCH", `${ep}/headers`, { headers: { "x-\u0000": "a" } }, ["body", "headers", "x-\u0000"]],
      [
        "POST",
        `/api/v1/app/${appId}/msg`,
        { eventType: "nul.plain", eventId: "e\u0000", payload: {} },
        ["body", "eventId"],
      ],
      ["POST", "/api/v1/source", { name: "s\u0000", provider: "none", secrets: [] }, ["body", "name"]],
      ["PATCH", `/api/v1/source/${sourceId}`, { name: "\u0000" }, ["body", "name"]],
      [
        "PUT",
        `/api/v1/source/${sourceId}`,
        { name: "s\u0000", provider: "none", secrets: [] },
        ["body", "name"],
      ],
      [
        "POST",
        "/api/v1/source",
        { name: "s", provider: "none", secrets: [], options: { forward: { appId: "a\u0000" } } },
        ["body", "options", "forward", "appId"],
      ],
    ];
    for (const [method, path, body, loc] of cases) {
      await expectNulRefused(await p.request(method, path, body), loc);
    }

    // Nothing was stored or changed.
    const apps = (await (await p.request("GET", "/api/v1/app")).json()) as { data: { name: string }[] };
    expect(apps.data.map((a) => a.name)).toEqual(["Nul"]);
    const endpoints = (await (await p.request("GET", `/api/v1/app/${appId}/endpoint`)).json()) as {
      data: { description: string }[];
    };
    expect(endpoints.data.map((e) => e.description)).toEqual(["before"]);
    expect(await (await p.request("GET", `${ep}/headers`)).json()).toMatchObject({ headers: {} });
    const types = (await (await p.request("GET", "/api/v1/event-type")).json()) as {
      data: { name: string; description: string }[];
    };
    expect(types.data.map((t) => [t.name, t.description])).toEqual([["nul.plain", "before"]]);
    const sources = (await (await p.request("GET", "/api/v1/source")).json()) as { data: { name: string }[] };
    expect(sources.data.map((s) => s.name)).toEqual(["before"]);
    const messages = (await (await p.request("GET", `/api/v1/app/${appId}/msg`)).json()) as {
      data: unknown[];
    };
    expect(messages.data).toEqual([]);
  });

  it("refuses endpoint header values with CR or LF, which no request can carry either", async () => {
    await expectNulRefused(
      await p.request("POST", `/api/v1/app/${appId}/endpoint`, {
        url: sink.url(),
        headers: { "x-a": "a\r\nx-injected: 1" },
      }),
      ["body", "headers", "x-a"],
    );
  });

  it("answers NUL in path segments and query parameters with a 4xx, not a failed lookup", async () => {
    const pathCases = [
      "/api/v1/app/a%00b",
      `/api/v1/app/${appId}/msg/m%00`,
      `/api/v1/app/${appId}/endpoint/e%00`,
      "/api/v1/event-type/a%00",
      "/api/v1/source/s%00",
      `/api/v1/source/${sourceId}/inbox/i%00`,
    ];
    for (const path of pathCases) {
      const res = await p.request("GET", path);
      const body = (await res.json()) as { code: string; detail: string };
      expect(res.status, path).toBe(400);
      expect(body.code).toBe("invalid_path");
      expect(body.detail).toMatch(/NUL/);
    }
    const queryCases: [string, string][] = [
      ["/api/v1/app?iterator=%00", "iterator"],
      [`/api/v1/app/${appId}/msg?channel=a%00`, "channel"],
      [`/api/v1/app/${appId}/msg?event_types=nul.plain,a%00`, "event_types"],
      [`/api/v1/app/${appId}/endpoint/${endpointId}/msg?channel=%00`, "channel"],
      [`/api/v1/app/${appId}/attempt/endpoint/${endpointId}?iterator=x%00`, "iterator"],
      [`/api/v1/source/${sourceId}/inbox?iterator=%00`, "iterator"],
      ["/api/v1/event-type?iterator=%00", "iterator"],
    ];
    for (const [path, name] of queryCases) {
      await expectNulRefused(await p.request("GET", path), ["query", name]);
    }
    // The ingest URL a provider calls: no source has NUL in its id or uid.
    const ingest = await send(p, "/in/nul-src%00", "{}", { "content-type": "application/json" });
    expect(ingest.status).toBe(404);
    expect(((await ingest.json()) as { code: string }).code).toBe("source_not_found");
  });

  it("keeps NUL inside JSON documents: payloads are delivered byte for byte, metadata, tags and schemas round-trip", async () => {
    const metadata = { "k\u0000": "v\u0000" };
    const patched = await p.request("PATCH", `/api/v1/app/${appId}`, { metadata });
    expect(patched.status, await patched.clone().text()).toBe(200);
    expect(
      ((await (await p.request("GET", `/api/v1/app/${appId}`)).json()) as { metadata: unknown }).metadata,
    ).toEqual(metadata);
    const schemas = {
      "1": { type: "object", properties: { s: { const: "a\u0000b" } }, required: ["s"] },
    };
    const et = await p.request("POST", "/api/v1/event-type", {
      name: "nul.schema",
      description: "",
      schemas,
    });
    expect(et.status, await et.clone().text()).toBe(201);
    expect(
      ((await (await p.request("GET", "/api/v1/event-type/nul.schema")).json()) as { schemas: unknown })
        .schemas,
    ).toEqual(schemas);

    const payload = { s: "a\u0000b", "k\u0000": ["\u0000", { "\u0000": "\u0000\u0000" }] };
    const res = await p.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "nul.schema",
      payload,
      tags: ["t\u0000"],
    });
    const text = await res.text();
    expect(res.status, text).toBe(202);
    const msg = JSON.parse(text) as { id: string; payload: unknown; tags: unknown };
    expect(msg.payload).toEqual(payload);
    const read = (await (await p.request("GET", `/api/v1/app/${appId}/msg/${msg.id}`)).json()) as {
      payload: unknown;
      tags: unknown;
    };
    expect(read).toMatchObject({ payload, tags: ["t\u0000"] });
    // The schema still decides: a payload without the NUL does not match it.
    const refused = await p.request("POST", `/api/v1/app/${appId}/msg`, {
      eventType: "nul.schema",
      payload: { s: "ab" },
    });
    expect(refused.status).toBe(422);

    await waitUntil(
      () => sink.received.some((r) => r.headers["webhook-id"] === msg.id),
      10_000,
      "the delivery",
    );
    const delivered = sink.received.find((r) => r.headers["webhook-id"] === msg.id)!;
    // The bytes sent are the JSON text accepted (NUL as the \u0000 escape), which is what was signed.
    expect(delivered.body.toString("utf8")).toBe(JSON.stringify(payload));
    expect(JSON.parse(delivered.body.toString("utf8"))).toEqual(payload);
  });

  it("stores a sender's request whatever NUL it carries: bytes intact, keys hashed, duplicates still found", async () => {
    const source = await createSource(p, {
      name: "nul intake",
      provider: "none",
      secrets: [],
      options: {
        eventIdPointer: "/id",
        orderingKey: { pointer: "/key" },
        eventTime: { pointer: "/at" },
      },
    });
    const headers = { "content-type": "application/json" };
    const nulBody =
      '{"id":"evt\\u0000 1","type":"nul\\u0000type","key":"k\\u0000","at":1700000000,"s":"a\\u0000b"}';
    const plainBody = '{"id":"plain-1","type":"plain","key":"k","at":1700000000}';
    // Sent together, so they are likely to share one commit: the plain one must not suffer for it.
    const [nul, plain] = await Promise.all([
      send(p, source.ingestPath, nulBody, headers),
      send(p, source.ingestPath, plainBody, headers),
    ]);
    expect(nul.status, await nul.clone().text()).toBe(200);
    expect(plain.status).toBe(200);
    expect(nul.headers.get("pigeon-inbox-status")).toBe("received");
    const nulId = nul.headers.get("pigeon-inbox-item")!;

    const item = (await (
      await p.request("GET", `/api/v1/source/${source.id}/inbox/${nulId}`)
    ).json()) as InboxItemBody;
    expect(item.body).toBe(nulBody);
    // Identity keys PostgreSQL text cannot hold are stored as their hash, as over-long ones are:
    // distinct values stay distinct, and the original is in the body.
    expect(item.eventId).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(item.eventType).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(item.orderingKey).toMatch(/^sha256:[0-9a-f]{64}$/);

    const again = await send(p, source.ingestPath, nulBody, headers);
    expect(again.status).toBe(200);
    expect(again.headers.get("pigeon-inbox-status")).toBe("duplicate");
    expect(again.headers.get("pigeon-duplicate-of")).toBe(nulId);
    const other = await send(p, source.ingestPath, nulBody.replace("evt\\u0000 1", "evt\\u0000 2"), headers);
    expect(other.headers.get("pigeon-inbox-status")).toBe("received");

    // Bytes that are not UTF-8, NUL bytes among them, are kept exactly.
    const bytes = Buffer.from([0x00, 0xff, 0x00, 0x41, 0xc3, 0x00]);
    const raw = await fetch(`${p.baseUrl}${source.ingestPath}?q=%00`, {
      method: "POST",
      headers: { "content-type": "application/octet-stream" },
      body: bytes,
    });
    expect(raw.status).toBe(200);
    const rawItem = (await (
      await p.request("GET", `/api/v1/source/${source.id}/inbox/${raw.headers.get("pigeon-inbox-item")}`)
    ).json()) as InboxItemBody;
    expect(rawItem).toMatchObject({ bodyBase64: bytes.toString("base64"), query: "q=%00" });
  });

  it("records a handler error with NUL in it, and fails the item once instead of retrying it for ever", async () => {
    const source = await createSource(p, {
      name: "nul handler",
      provider: "none",
      secrets: [],
      options: { eventIdPointer: "/id", maxAttempts: 1 },
    });
    const calls = new Map<string, number>();
    p.engine.inbound.on(
      "*",
      (event) => {
        const id = event.eventId ?? "";
        calls.set(id, (calls.get(id) ?? 0) + 1);
        if (id === "bad") throw new Error("cannot use \u0000 here");
      },
      { source: source.id },
    );
    const headers = { "content-type": "application/json" };
    const [bad, good] = await Promise.all([
      send(p, source.ingestPath, '{"id":"bad"}', headers),
      send(p, source.ingestPath, '{"id":"good"}', headers),
    ]);
    expect([bad.status, good.status]).toEqual([200, 200]);
    let items: InboxItemBody[] = [];
    await waitUntil(
      async () => {
        items = await inbox(p, source.id);
        return items.length === 2 && items.every((i) => i.status === "processed" || i.status === "failed");
      },
      5_000,
      "both items to settle",
    );
    const byId = new Map(items.map((i) => [i.eventId, i]));
    expect(byId.get("bad")).toMatchObject({
      status: "failed",
      attempts: 1,
      lastError: "Error: cannot use \uFFFD here",
    });
    expect(byId.get("good")).toMatchObject({ status: "processed", attempts: 1, lastError: null });
    expect([calls.get("bad"), calls.get("good")]).toEqual([1, 1]);
  });

  it("forwards a sender's body with NUL in it as a message, delivered as sent", async () => {
    const source = await createSource(p, {
      name: "nul forward",
      provider: "none",
      secrets: [],
      options: { forward: { appId } },
    });
    const body = '{"type":"fwd\\u0000type","s":"a\\u0000b"}';
    const res = await send(p, source.ingestPath, body, { "content-type": "application/json" });
    expect(res.status).toBe(200);
    const itemId = res.headers.get("pigeon-inbox-item")!;
    let msgId = "";
    await waitUntil(
      async () => {
        const got = await p.request("GET", `/api/v1/app/${appId}/msg/${itemId}`);
        if (got.status !== 200) return false;
        msgId = ((await got.json()) as { id: string }).id;
        return true;
      },
      5_000,
      "the forwarded message",
    );
    await waitUntil(
      () => sink.received.some((r) => r.headers["webhook-id"] === msgId),
      10_000,
      "the delivery",
    );
    const delivered = sink.received.find((r) => r.headers["webhook-id"] === msgId)!;
    expect(JSON.parse(delivered.body.toString("utf8"))).toEqual(JSON.parse(body));
    await waitUntil(
      async () => (await inbox(p, source.id))[0]?.status === "processed",
      5_000,
      "the item processed",
    );
  });

  // Last: it changes the records the tests above read.
  it("never answers 5xx, whichever string or key of any route's body holds NUL", async () => {
    let n = 0;
    const uid = () => `sweep-${n++}`;
    const whsec = () => `whsec_${randomBytes(24).toString("base64")}`;
    const at = new Date(Date.now() - 60_000).toISOString();
    const app = {
      name: "n",
      uid: "nul-app",
      metadata: { k: "v" },
      throttleRate: 10,
      rateLimit: 10,
      handshake: "off",
    };
    const eventType = {
      description: "d",
      archived: false,
      deprecated: false,
      featureFlag: "f",
      featureFlags: ["f"],
      groupName: "g",
      schemas: { "1": { type: "object" } },
    };
    const endpoint = () => ({
      url: sink.url(),
      description: "d",
      uid: uid(),
      version: 1,
      // Disabled, so the sweep's messages are not delivered to its endpoints.
      disabled: true,
      eventTypes: ["nul.plain"],
      filterTypes: ["nul.plain"],
      channels: ["c"],
      throttleRate: 10,
      rateLimit: 10,
      metadata: { k: "v" },
      headers: { "x-a": "v" },
      timeoutMs: 5000,
      method: "POST",
      bodyFormat: "json",
      headerStyle: "webhook",
    });
    const source = () => ({
      uid: uid(),
      name: "n",
      provider: "none",
      secrets: ["s"],
      options: {
        toleranceSec: 300,
        publicUrl: "https://hooks.example.invalid/in",
        apiKeyHeader: "x-key",
        verifyToken: "t",
        allowSha1: false,
        eventIdHeader: "x-id",
        eventIdPointer: "/id",
        eventType: { pointer: "/type" },
        orderingKey: { header: "x-order" },
        eventTime: { pointer: "/at" },
        staleAction: "skip",
        concurrency: 2,
        ratePerSecond: 10,
        maxAttempts: 2,
        retryBaseMs: 100,
        retryMaxMs: 1000,
        handlerTimeoutMs: 1000,
        forward: { appId, eventType: "nul.plain" },
      },
    });
    const ep = `/api/v1/app/${appId}/endpoint/${endpointId}`;
    // Every operation with a body, each with a valid body that sets every field.
    const bodies: Record<string, [string, string, () => Record<string, unknown>]> = {
      "v1.application.create": ["POST", "/api/v1/app", () => ({ ...app, uid: uid() })],
      "v1.application.update": ["PUT", `/api/v1/app/${appId}`, () => app],
      "v1.application.patch": ["PATCH", `/api/v1/app/${appId}`, () => app],
      "v1.event-type.create": ["POST", "/api/v1/event-type", () => ({ name: uid(), ...eventType })],
      "v1.event-type.update": ["PUT", "/api/v1/event-type/nul.plain", () => eventType],
      "v1.event-type.patch": ["PATCH", "/api/v1/event-type/nul.plain", () => eventType],
      "v1.endpoint.create": [
        "POST",
        `/api/v1/app/${appId}/endpoint`,
        () => ({ ...endpoint(), secret: whsec() }),
      ],
      "v1.endpoint.update": ["PUT", ep, () => ({ ...endpoint(), uid: "nul-ep" })],
      "v1.endpoint.patch": ["PATCH", ep, () => ({ ...endpoint(), uid: "nul-ep" })],
      "v1.endpoint.rotate-secret": [
        "POST",
        `${ep}/secret/rotate`,
        () => ({ key: whsec(), gracePeriodSeconds: 60 }),
      ],
      "v1.endpoint.update-headers": ["PUT", `${ep}/headers`, () => ({ headers: { "x-a": "v" } })],
      "v1.endpoint.patch-headers": [
        "PATCH",
        `${ep}/headers`,
        () => ({ headers: { "x-a": "v", "x-b": null } }),
      ],
      "v1.endpoint.recover": ["POST", `${ep}/recover`, () => ({ since: at, until: at })],
      "v1.message.create": [
        "POST",
        `/api/v1/app/${appId}/msg`,
        () => ({
          eventType: "nul.plain",
          eventId: uid(),
          payload: { k: "v" },
          channels: ["c"],
          tags: ["t"],
          application: { name: "n", uid: "nul-app" },
          payloadRetentionPeriod: 1,
          payloadRetentionHours: 1,
          deliverAt: at,
          transformationsParams: { k: "v" },
        }),
      ],
      "v1.source.create": ["POST", "/api/v1/source", source],
      "v1.source.update": ["PUT", `/api/v1/source/${sourceId}`, () => ({ ...source(), uid: "nul-src" })],
      "v1.source.patch": ["PATCH", `/api/v1/source/${sourceId}`, () => ({ ...source(), uid: "nul-src" })],
    };

    // The table covers every operation with a body and every field of it, so new ones are swept.
    const doc = (await (await fetch(`${p.baseUrl}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, { operationId: string; requestBody?: unknown }>>;
    };
    for (const ops of Object.values(doc.paths)) {
      for (const op of Object.values(ops)) {
        if (!op.requestBody) continue;
        const schema = (op.requestBody as { content: Record<string, { schema: { properties: object } }> })
          .content["application/json"]!.schema;
        expect(Object.keys(bodies), "an operation with a body").toContain(op.operationId);
        expect(Object.keys(bodies[op.operationId]![2]()).sort(), op.operationId).toEqual(
          Object.keys(schema.properties).sort(),
        );
      }
    }

    let swept = 0;
    for (const [operationId, [method, path, body]] of Object.entries(bodies)) {
      const valid = await p.request(method, path, body());
      expect(valid.status, `${operationId}: ${await valid.text()}`).toBeLessThan(300);
      for (const variant of nulVariants(body())) {
        const res = await p.request(method, path, variant);
        const text = await res.text();
        expect(res.status, `${operationId} ${JSON.stringify(variant)} → ${text}`).toBeLessThan(500);
        swept++;
      }
    }
    expect(swept).toBeGreaterThan(200);
  });
});

/** One copy of `value` per string and per object key in it, with NUL added to that one. */
function nulVariants(value: unknown): unknown[] {
  if (typeof value === "string") return [`${value}\u0000`];
  if (Array.isArray(value))
    return value.flatMap((item, i) => nulVariants(item).map((v) => value.map((x, j) => (j === i ? v : x))));
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    return entries.flatMap(([, item], i) => [
      Object.fromEntries(entries.map(([k, x], j) => [j === i ? `${k}\u0000` : k, x])),
      ...nulVariants(item).map((v) => Object.fromEntries(entries.map(([k, x], j) => [k, j === i ? v : x]))),
    ]);
  }
  return [];
}
