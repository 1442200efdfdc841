import { Webhook } from "standardwebhooks";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink } from "../helpers/sink.js";

describe("bodies, methods and header styles", () => {
  let pigeon: TestPigeon;
  let sink: Sink;
  let appId: string;

  beforeEach(async () => {
    pigeon = await startPigeon();
    sink = await Sink.start();
    appId = (await pigeon.svix.application.create({ name: "Bodies" })).id;
  });
  afterEach(async () => {
    await pigeon.close();
    await sink.close();
  });

  async function deliverVia(settings: Record<string, unknown>) {
    const res = await pigeon.request("POST", `/api/v1/app/${appId}/endpoint`, {
      url: sink.url("/hook?src=pigeon"),
      ...settings,
    });
    expect(res.status).toBe(201);
    const ep = (await res.json()) as { id: string };
    const secret = (await pigeon.svix.endpoint.getSecret(appId, ep.id)).key;
    await pigeon.svix.message.create(appId, {
      eventType: "employee.created",
      payload: { name: "Ann & Bo", tags: ["a", "b"], address: { city: "Oslo" } },
    });
    await sink.waitFor(1);
    return { req: sink.received[0]!, secret };
  }

  it("JSON over POST by default, signed over the exact bytes", async () => {
    const { req, secret } = await deliverVia({});
    expect(req.method).toBe("POST");
    expect(req.headers["content-type"]).toBe("application/json");
    expect(new Webhook(secret).verify(req.body.toString(), req.headers)).toMatchObject({ name: "Ann & Bo" });
  });

  it("form-encoded over PUT", async () => {
    const { req, secret } = await deliverVia({ method: "PUT", bodyFormat: "form" });
    expect(req.method).toBe("PUT");
    expect(req.headers["content-type"]).toBe("application/x-www-form-urlencoded");
    const form = new URLSearchParams(req.body.toString());
    expect(form.get("name")).toBe("Ann & Bo");
    expect(form.get("address[city]")).toBe("Oslo");
    expect(form.get("tags[1]")).toBe("b");
    // The signature is over exactly these bytes, whatever their format.
    const sig = new Webhook(secret).sign(
      req.headers["webhook-id"]!,
      new Date(Number(req.headers["webhook-timestamp"]) * 1000),
      req.body.toString(),
    );
    expect(req.headers["webhook-signature"]).toBe(sig);
  });

  it("XML body", async () => {
    const { req, secret } = await deliverVia({ bodyFormat: "xml" });
    expect(req.headers["content-type"]).toBe("application/xml");
    const text = req.body.toString();
    expect(text).toContain("<name>Ann &amp; Bo</name>");
    expect(text).toContain("<city>Oslo</city>");
    const sig = new Webhook(secret).sign(
      req.headers["webhook-id"]!,
      new Date(Number(req.headers["webhook-timestamp"]) * 1000),
      text,
    );
    expect(req.headers["webhook-signature"]).toBe(sig);
  });

  it("GET carries the payload in the query string, which is what is signed", async () => {
    const { req, secret } = await deliverVia({ method: "GET" });
    expect(req.method).toBe("GET");
    expect(req.body.length).toBe(0);
    const url = new URL(req.url, "http://x");
    expect(url.searchParams.get("src")).toBe("pigeon");
    expect(url.searchParams.get("name")).toBe("Ann & Bo");
    const sig = new Webhook(secret).sign(
      req.headers["webhook-id"]!,
      new Date(Number(req.headers["webhook-timestamp"]) * 1000),
      url.search.slice(1),
    );
    expect(req.headers["webhook-signature"]).toBe(sig);
  });

  it("svix-* header names on request, and custom endpoint headers", async () => {
    const { req } = await deliverVia({ headerStyle: "svix", headers: { "X-Tenant": "t1" } });
    expect(req.headers["svix-id"]).toMatch(/^msg_/);
    expect(req.headers["svix-signature"]).toMatch(/^v1,/);
    expect(req.headers["webhook-id"]).toBeUndefined();
    expect(req.headers["x-tenant"]).toBe("t1");
  });
});
