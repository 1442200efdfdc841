import { randomBytes, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PROVIDER_NAMES } from "../../src/inbound/providers/index.js";
import { startPigeon, type TestPigeon, TOKEN } from "../helpers/pigeon.js";
import { createSource, inbox, send, signStandard, whsec } from "./helpers.js";

describe("sources API", () => {
  let p: TestPigeon;
  beforeAll(async () => {
    p = await startPigeon({ PIGEON_MAX_PAYLOAD_BYTES: "2048" });
  });
  afterAll(async () => {
    await p.close();
  });

  it("creates, reads, lists, patches, replaces and deletes a source", async () => {
    const created = await createSource(p, {
      uid: "acme",
      name: "Acme",
      provider: "github",
      secrets: ["s1"],
      options: { concurrency: 2 },
    });
    expect(created.id).toMatch(/^src_/);
    expect(created.ingestPath).toBe(`/in/${created.id}`);
    expect(created.ingestUrl).toBe(`${p.baseUrl}/in/${created.id}`);
    expect(created).not.toHaveProperty("secrets");
    expect(created.secretCount).toBe(1);
    expect(created.stats).toMatchObject({ received: 0, processed: 0, verificationFailures: 0 });

    const byUid = (await (await p.request("GET", "/api/v1/source/acme")).json()) as { id: string };
    expect(byUid.id).toBe(created.id);

    const patched = await p.request("PATCH", `/api/v1/source/${created.id}`, {
      name: "Acme 2",
      secrets: ["s2", "s1"],
    });
    expect(patched.status).toBe(200);
    expect(await patched.json()).toMatchObject({
      name: "Acme 2",
      uid: "acme",
      secretCount: 2,
      options: { concurrency: 2 },
    });

    const replaced = await p.request("PUT", `/api/v1/source/${created.id}`, {
      name: "Acme 3",
      provider: "stripe",
      secrets: ["whsec_x"],
    });
    expect(replaced.status).toBe(200);
    expect(await replaced.json()).toMatchObject({
      name: "Acme 3",
      provider: "stripe",
      options: {},
      uid: "acme",
    });

    const list = (await (await p.request("GET", "/api/v1/source?limit=250")).json()) as {
      data: { id: string }[];
      done: boolean;
    };
    expect(list.data.map((s) => s.id)).toContain(created.id);
    expect(list.done).toBe(true);

    expect((await p.request("DELETE", `/api/v1/source/${created.id}`)).status).toBe(204);
    expect((await p.request("GET", `/api/v1/source/${created.id}`)).status).toBe(404);
    const gone = await send(p, `/in/${created.id}`, "{}", { "content-type": "application/json" });
    expect(gone.status).toBe(404);
    expect(((await gone.json()) as { code: string }).code).toBe("source_not_found");
  });

  it("accepts every provider", async () => {
    for (const provider of PROVIDER_NAMES) {
      const body: Record<string, unknown> = {
        name: provider,
        provider,
        secrets: provider === "none" ? [] : ["secret"],
      };
      if (provider === "generic-hmac")
        body.options = { generic: { header: "x-sig", algorithm: "sha256", encoding: "hex", signed: "body" } };
      await createSource(p, body);
    }
  });

  it("refuses bad settings with 422 naming the field and the fix", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: "x", provider: "pigeonpost", secrets: ["s"] }, "provider", /./],
      [{ name: "x", provider: "github", secrets: [] }, "secrets", /at least one secret/],
      [{ name: "x", provider: "generic-hmac", secrets: ["s"] }, "generic", /generic/],
      [
        { name: "x", provider: "github", secrets: ["s"], options: { orderingKey: { pointer: "no-slash" } } },
        "pointer",
        /JSON pointer/,
      ],
      [
        { name: "x", provider: "github", secrets: ["s"], options: { orderingKey: {} } },
        "orderingKey",
        /exactly one/,
      ],
      [{ name: "x", provider: "github", secrets: ["s"], options: { concurrency: 0 } }, "concurrency", /./],
      [
        { name: "x", provider: "github", secrets: ["s"], options: { forward: { appId: "nope" } } },
        "appId",
        /create it first/,
      ],
      [{ name: "x", provider: "github", secrets: ["s"], uid: "src_sneaky" }, "uid", /src_/],
      [{ name: "x", provider: "github", secrets: ["s"], unknown: 1 }, "unknown", /unknown field/],
    ];
    for (const [body, field, message] of cases) {
      const res = await p.request("POST", "/api/v1/source", body);
      const text = await res.text();
      expect(res.status, text).toBe(422);
      const detail = (JSON.parse(text) as { detail: { loc: (string | number)[]; msg: string }[] }).detail;
      const hit = detail.find((d) => d.loc.includes(field));
      expect(hit, text).toBeDefined();
      expect(hit!.msg).toMatch(message);
    }
  });

  it("refuses a duplicate uid with 409", async () => {
    await createSource(p, { uid: "twice", name: "a", provider: "github", secrets: ["s"] });
    const res = await p.request("POST", "/api/v1/source", {
      uid: "twice",
      name: "b",
      provider: "github",
      secrets: ["s"],
    });
    expect(res.status).toBe(409);
  });

  it("needs the admin token for /api/v1/source but not for the ingest URL", async () => {
    expect((await fetch(`${p.baseUrl}/api/v1/source`)).status).toBe(401);
    const secret = whsec();
    const source = await createSource(p, { name: "open", provider: "standard-webhooks", secrets: [secret] });
    const body = JSON.stringify({ type: "t" });
    const res = await fetch(`${p.baseUrl}${source.ingestPath}`, {
      method: "POST",
      body,
      headers: signStandard(secret, "msg_a", body),
    });
    expect(res.status).toBe(200);
    // The admin token is no substitute for the provider's signature.
    const withToken = await send(p, source.ingestPath, body, { authorization: `Bearer ${TOKEN}` });
    expect(withToken.status).toBe(401);
  });

  it("lists the source routes and the ingest URL in the OpenAPI document", async () => {
    const doc = (await (await fetch(`${p.baseUrl}/api/v1/openapi.json`)).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(doc.paths["/api/v1/source"]!)).toEqual(expect.arrayContaining(["get", "post"]));
    expect(Object.keys(doc.paths["/api/v1/source/{source_id}"]!)).toEqual(
      expect.arrayContaining(["get", "put", "patch", "delete"]),
    );
    expect(doc.paths["/api/v1/source/{source_id}/inbox"]).toBeDefined();
    expect(Object.keys(doc.paths["/in/{source_id}"]!)).toEqual(
      expect.arrayContaining(["post", "put", "get"]),
    );
    expect(doc.paths["/in/{source_id}"]!.post).not.toHaveProperty("security");
  });

  it("stores JSON, form, XML and other bodies with their kind, for POST, PUT and GET", async () => {
    const source = await createSource(p, {
      name: "kinds",
      provider: "none",
      secrets: [],
      options: { eventIdHeader: "x-id" },
    });
    const cases: [string, string, string | undefined, string][] = [
      ["POST", "application/json; charset=utf-8", '{"a":1}', "json"],
      ["POST", "application/x-www-form-urlencoded", "a=1&b=%20", "form"],
      ["PUT", "application/xml", "<a>1</a>", "xml"],
      ["POST", "application/octet-stream", "\u0000\u0001binary", "other"],
      ["GET", "text/plain", undefined, "other"],
    ];
    for (const [method, type, body, kind] of cases) {
      const res = await send(
        p,
        `${source.ingestPath}/sub/path?q=${kind}`,
        body,
        { "content-type": type, "x-id": randomUUID() },
        method,
      );
      expect(res.status, `${method} ${type}`).toBe(200);
      const item = (await (
        await p.request("GET", `/api/v1/source/${source.id}/inbox/${res.headers.get("pigeon-inbox-item")}`)
      ).json()) as Record<string, unknown>;
      expect(item).toMatchObject({
        method,
        bodyKind: kind,
        contentType: type,
        query: `q=${kind}`,
        path: `${source.ingestPath}/sub/path`,
      });
      expect(item.body).toBe(body ?? "");
    }
  });

  it("keeps non-UTF-8 bodies byte for byte", async () => {
    const source = await createSource(p, { name: "binary", provider: "none", secrets: [] });
    const bytes = Buffer.from([0xff, 0xfe, 0x00, 0x80, 0x41]);
    const res = await fetch(`${p.baseUrl}${source.ingestPath}`, {
      method: "POST",
      body: bytes,
      headers: { "content-type": "application/octet-stream" },
    });
    expect(res.status).toBe(200);
    const item = (await (
      await p.request("GET", `/api/v1/source/${source.id}/inbox/${res.headers.get("pigeon-inbox-item")}`)
    ).json()) as Record<string, unknown>;
    expect(item.body).toBeNull();
    expect(Buffer.from(item.bodyBase64 as string, "base64").equals(bytes)).toBe(true);
  });

  it("answers 405 for other methods, 404 for unknown sources, 413 above the size limit", async () => {
    const source = await createSource(p, { name: "limits", provider: "none", secrets: [] });
    const del = await send(p, source.ingestPath, undefined, {}, "DELETE");
    expect(del.status).toBe(405);
    expect(del.headers.get("allow")).toBe("POST, PUT, GET");
    expect(((await del.json()) as { code: string }).code).toBe("method_not_allowed");

    const unknown = await send(p, "/in/src_doesnotexist", "{}", {});
    expect(unknown.status).toBe(404);
    const badEscape = await send(p, "/in/%E0%A4%A", "{}", {});
    expect(badEscape.status).toBe(404);

    const big = await send(p, source.ingestPath, "x".repeat(4096), { "content-type": "text/plain" });
    expect(big.status).toBe(413);
    expect(((await big.json()) as { code: string; detail: string }).detail).toMatch(/2048 bytes/);
    expect(await inbox(p, source.id)).toEqual([]);
  });

  it("never answers 500 to garbage", async () => {
    const secret = whsec();
    const sources = await Promise.all(
      [
        "standard-webhooks",
        "stripe",
        "slack",
        "github",
        "twilio",
        "mailgun",
        "sendgrid",
        "meta",
        "x",
        "zoom",
      ].map((provider) =>
        createSource(p, {
          name: `fuzz-${provider}`,
          provider,
          secrets: [provider === "standard-webhooks" ? secret : "s"],
        }),
      ),
    );
    const headerValues = [
      "",
      "v1,",
      "t=,v1=",
      "sha256=zz",
      "v0=",
      "\u00ff",
      "1".repeat(300),
      "Basic ???",
      "whsec_",
    ];
    const names = [
      "webhook-signature",
      "webhook-id",
      "webhook-timestamp",
      "stripe-signature",
      "x-slack-signature",
      "x-slack-request-timestamp",
      "x-hub-signature-256",
      "x-twilio-signature",
      "content-type",
      "x-zm-signature",
    ];
    let requests = 0;
    for (const source of sources) {
      for (let i = 0; i < 12; i++) {
        const headers: Record<string, string> = {};
        for (const name of names)
          if (Math.random() < 0.5)
            headers[name] = headerValues[Math.floor(Math.random() * headerValues.length)]!.replace(
              /[^\x20-\x7e]/g,
              "?",
            );
        const bodies = [
          "",
          "{",
          "[]",
          "null",
          '{"type":"url_verification","challenge":1}',
          randomBytes(64).toString("latin1"),
          '{"event":"endpoint.url_validation","payload":{}}',
        ];
        const body = bodies[i % bodies.length]!;
        const method = ["POST", "PUT", "GET"][i % 3]!;
        const query = ["", "?crc_token=%%%", "?hub.mode=subscribe", "?validationToken=", "?challenge="][
          i % 5
        ]!;
        const res = await send(
          p,
          `${source.ingestPath}${query}`,
          method === "GET" ? undefined : body,
          headers,
          method,
        );
        requests++;
        expect(res.status, `${source.id} ${method} ${query}`).toBeLessThan(500);
      }
    }
    expect(requests).toBe(120);
  });
});
