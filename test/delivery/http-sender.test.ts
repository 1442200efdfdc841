import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Agent } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HttpSender, type OutboundRequest } from "../../src/delivery/http-sender.js";
import { AddressPolicy } from "../../src/delivery/ssrf/address-policy.js";
import { parseCidrList } from "../../src/delivery/ssrf/cidr.js";
import { createGuardedConnector, SsrfBlockedError } from "../../src/delivery/ssrf/guarded-connect.js";

// Every server here listens on loopback; nothing else is ever contacted.
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage["headers"];
  body: string;
}

interface Sink {
  server: Server;
  base: string;
  seen: Seen[];
}

type Route = (req: IncomingMessage, res: ServerResponse) => void;

async function startSink(routes: Record<string, Route>): Promise<Sink> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      seen.push({
        method: req.method ?? "",
        url: req.url ?? "",
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      });
      const path = (req.url ?? "/").split("?")[0] ?? "/";
      const route = routes[path];
      if (route) route(req, res);
      else res.writeHead(404).end("no route");
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { server, base: `http://127.0.0.1:${port}`, seen };
}

async function stop(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const LOOPBACK = parseCidrList("127.0.0.0/8,::1/128");

const post = (url: string, extra: Partial<OutboundRequest> = {}): OutboundRequest => ({
  url,
  method: "POST",
  headers: { "content-type": "application/json" },
  body: Buffer.from('{"hello":"world"}'),
  timeoutMs: 5_000,
  ...extra,
});

describe("HttpSender against loopback sinks", () => {
  let sink: Sink;
  let sender: HttpSender;

  beforeAll(async () => {
    sink = await startSink({
      "/ok": (_req, res) => res.writeHead(200, { "x-echo": "yes" }).end("thanks"),
      "/fail": (_req, res) => res.writeHead(500).end("boom"),
      "/redirect": (_req, res) => res.writeHead(301, { location: "/ok" }).end(),
      "/hang": () => {
        // Never answer; stop() closes the socket.
      },
      "/drip": (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        const timer = setInterval(() => res.write("."), 50);
        res.on("close", () => clearInterval(timer));
      },
      "/destroy": (req) => req.socket.destroy(),
      "/big": (_req, res) => {
        res.writeHead(200, { "content-type": "text/plain" });
        // 4 MiB, far past the 1 KiB limit used below; written in chunks like a real server.
        const chunk = Buffer.alloc(64 * 1024, "a");
        let left = 64;
        const pump = (): void => {
          while (left > 0) {
            left--;
            if (!res.write(chunk)) return void res.once("drain", pump);
          }
          res.end();
        };
        res.on("error", () => {});
        pump();
      },
      "/limited": (_req, res) => res.writeHead(429, { "retry-after": "2" }).end("slow down"),
      "/limited-date": (_req, res) =>
        res.writeHead(503, { "retry-after": new Date(Date.now() + 60_000).toUTCString() }).end(),
      "/cookies": (_req, res) => res.writeHead(204, { "set-cookie": ["a=1", "b=2"] }).end(),
      "/limited-twice": (_req, res) =>
        res
          .writeHead(429, [
            ["retry-after", "3"],
            ["retry-after", "9"],
          ])
          .end(),
      "/limited-broken": (_req, res) => {
        // A 503 with Retry-After whose body breaks off: the connection dies mid-body.
        res.writeHead(503, { "retry-after": "4", "content-length": "100" });
        res.write("partial");
        setTimeout(() => res.destroy(), 20);
      },
    });
    sender = new HttpSender({ allowedNetworks: LOOPBACK, maxResponseBytes: 1024 });
  });

  afterAll(async () => {
    await stop(sink.server);
    await sender.close();
  });

  it("POSTs the body and headers and reports a 200 with its body and headers", async () => {
    const result = await sender.send(post(`${sink.base}/ok?x=1`, { headers: { "x-custom": "v" } }));
    expect(result).toMatchObject({ status: 200, ok: true, responseBody: "thanks" });
    expect(result.errorCode).toBeUndefined();
    expect(result.responseHeaders["x-echo"]).toBe("yes");
    expect(result.durationMs).toBeGreaterThanOrEqual(0);
    expect(Number.isInteger(result.durationMs)).toBe(true);
    const seen = sink.seen.at(-1)!;
    expect(seen).toMatchObject({ method: "POST", url: "/ok?x=1", body: '{"hello":"world"}' });
    expect(seen.headers["x-custom"]).toBe("v");
  });

  it("reports a 500 as http_status with the body", async () => {
    const result = await sender.send(post(`${sink.base}/fail`));
    expect(result).toMatchObject({ status: 500, ok: false, errorCode: "http_status", responseBody: "boom" });
  });

  it("does not follow redirects: 3xx is an http_status failure", async () => {
    const before = sink.seen.length;
    const result = await sender.send(post(`${sink.base}/redirect`));
    expect(result).toMatchObject({ status: 301, ok: false, errorCode: "http_status" });
    expect(result.responseHeaders["location"]).toBe("/ok");
    expect(sink.seen.length).toBe(before + 1);
  });

  it("times out a server that never answers", async () => {
    const started = Date.now();
    const result = await sender.send(post(`${sink.base}/hang`, { timeoutMs: 300 }));
    expect(result).toMatchObject({ ok: false, errorCode: "timeout" });
    expect(result.status).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("settles a request at its own deadline while it still waits for a connection", async () => {
    // The second request's deadline passes while it is queued behind the first: it must settle
    // then, not when a connection frees (a connect that hangs used to outlast any timeout this way).
    const single = new HttpSender({ allowedNetworks: LOOPBACK, connectionsPerOrigin: 1 });
    const settled: string[] = [];
    try {
      const first = single.send(post(`${sink.base}/hang`, { timeoutMs: 2_000 })).then((r) => {
        settled.push("first");
        return r;
      });
      const second = single.send(post(`${sink.base}/hang`, { timeoutMs: 150 })).then((r) => {
        settled.push("second");
        return r;
      });
      const [, b] = await Promise.all([first, second]);
      expect(b).toMatchObject({ ok: false, errorCode: "timeout" });
      expect(settled).toEqual(["second", "first"]);
    } finally {
      await single.close();
    }
  });

  it("never sends a request whose deadline passed while it waited for a connection", async () => {
    // One connection per origin: the second request queues behind the first, which hangs.
    const single = new HttpSender({ allowedNetworks: LOOPBACK, connectionsPerOrigin: 1 });
    const hangsBefore = sink.seen.filter((s) => s.url === "/hang").length;
    try {
      const first = single.send(post(`${sink.base}/hang`, { timeoutMs: 600 }));
      const second = single.send(post(`${sink.base}/hang`, { timeoutMs: 150 }));
      const [a, b] = await Promise.all([first, second]);
      expect(a).toMatchObject({ ok: false, errorCode: "timeout" });
      expect(b).toMatchObject({ ok: false, errorCode: "timeout" });
      expect(b.status).toBeUndefined();
      // Room for a late send to show up, had the queued request gone out on a new connection.
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(sink.seen.filter((s) => s.url === "/hang").length).toBe(hangsBefore + 1);
    } finally {
      await single.close();
    }
  });

  it("enforces the whole-request timeout on a slow-dripping body", async () => {
    const started = Date.now();
    const result = await sender.send(post(`${sink.base}/drip`, { timeoutMs: 300 }));
    expect(result).toMatchObject({ status: 200, ok: false, errorCode: "timeout" });
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  it("reports a destroyed socket as connection_reset", async () => {
    const result = await sender.send(post(`${sink.base}/destroy`));
    expect(result).toMatchObject({ ok: false, errorCode: "connection_reset" });
    expect(result.errorMessage).toBeTruthy();
  });

  it("truncates a response body over the limit and still records the status", async () => {
    const result = await sender.send(post(`${sink.base}/big`));
    expect(result).toMatchObject({ status: 200, ok: true });
    expect(result.responseBody).toBe("a".repeat(1024));
    // The pool is still usable afterwards.
    expect((await sender.send(post(`${sink.base}/ok`))).ok).toBe(true);
  });

  it("parses Retry-After in seconds and as an HTTP date", async () => {
    const seconds = await sender.send(post(`${sink.base}/limited`));
    expect(seconds).toMatchObject({ status: 429, ok: false, errorCode: "http_status", retryAfterMs: 2000 });
    const date = await sender.send(post(`${sink.base}/limited-date`));
    expect(date.retryAfterMs).toBeGreaterThan(55_000);
    expect(date.retryAfterMs).toBeLessThanOrEqual(60_000);
    expect((await sender.send(post(`${sink.base}/ok`))).retryAfterMs).toBeUndefined();
  });

  it("honours the first of repeated Retry-After headers, and one whose body broke off", async () => {
    const twice = await sender.send(post(`${sink.base}/limited-twice`));
    expect(twice).toMatchObject({ status: 429, ok: false, retryAfterMs: 3000 });
    const broken = await sender.send(post(`${sink.base}/limited-broken`));
    expect(broken).toMatchObject({ status: 503, ok: false, retryAfterMs: 4000 });
  });

  it("joins repeated response headers", async () => {
    const result = await sender.send(post(`${sink.base}/cookies`));
    expect(result).toMatchObject({ status: 204, ok: true, responseBody: "" });
    expect(result.responseHeaders["set-cookie"]).toBe("a=1, b=2");
  });

  it("sends GET without a body and PUT with one", async () => {
    const get = await sender.send({
      url: `${sink.base}/ok?a=1&b=2`,
      method: "GET",
      headers: {},
      timeoutMs: 5_000,
    });
    expect(get.ok).toBe(true);
    expect(sink.seen.at(-1)).toMatchObject({ method: "GET", url: "/ok?a=1&b=2", body: "" });
    const put = await sender.send(post(`${sink.base}/ok`, { method: "PUT" }));
    expect(put.ok).toBe(true);
    expect(sink.seen.at(-1)).toMatchObject({ method: "PUT", body: '{"hello":"world"}' });
  });

  it("turns URL userinfo into Basic auth", async () => {
    const url = `${sink.base.replace("http://", "http://user:p%40ss@")}/ok`;
    expect((await sender.send(post(url))).ok).toBe(true);
    expect(sink.seen.at(-1)?.headers.authorization).toBe(
      `Basic ${Buffer.from("user:p@ss").toString("base64")}`,
    );
  });

  it("reaches loopback by name through the guarded lookup when loopback is allowed", async () => {
    const result = await sender.send(post(`${sink.base.replace("127.0.0.1", "localhost")}/ok`));
    // localhost may resolve to ::1 first while the sink listens on 127.0.0.1 only; either way the
    // lookup let it through (no ssrf_blocked), and happy eyeballs lands on 127.0.0.1.
    expect(result.errorCode).toBeUndefined();
    expect(result.status).toBe(200);
  });

  it("reports a closed port as connection_refused", async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as AddressInfo;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const result = await sender.send(post(`http://127.0.0.1:${port}/`));
    expect(result).toMatchObject({ ok: false, errorCode: "connection_refused" });
    expect(result.status).toBeUndefined();
  });

  it("reports an unresolvable name as dns", async () => {
    const result = await sender.send(post("http://pigeon-sender-test.invalid/hook"));
    expect(result).toMatchObject({ ok: false, errorCode: "dns" });
  });

  it("reports TLS failures as tls (https to a plain-HTTP loopback server)", async () => {
    const result = await sender.send(post(`${sink.base.replace("http://", "https://")}/ok`));
    expect(result).toMatchObject({ ok: false, errorCode: "tls" });
  });

  it("reports malformed and non-http URLs as invalid_url", async () => {
    expect((await sender.send(post("not a url"))).errorCode).toBe("invalid_url");
    expect((await sender.send(post("ftp://127.0.0.1/x"))).errorCode).toBe("invalid_url");
  });
});

describe("HttpSender SSRF guard (loopback under a policy that does not allow it)", () => {
  let sink: Sink;
  let sender: HttpSender;

  beforeAll(async () => {
    sink = await startSink({ "/ok": (_req, res) => res.writeHead(200).end("should never be seen") });
    sender = new HttpSender({ allowedNetworks: [] });
  });

  afterAll(async () => {
    await stop(sink.server);
    await sender.close();
  });

  it("blocks an IPv4 literal before connecting", async () => {
    const result = await sender.send(post(`${sink.base}/ok`));
    expect(result).toMatchObject({ ok: false, errorCode: "ssrf_blocked" });
    expect(result.errorMessage).toMatch(/SSRF/);
    expect(sink.seen).toHaveLength(0);
  });

  it("blocks IPv6 and IPv4-mapped literals", async () => {
    const port = new URL(sink.base).port;
    expect((await sender.send(post(`http://[::1]:${port}/ok`))).errorCode).toBe("ssrf_blocked");
    expect((await sender.send(post(`http://[::ffff:127.0.0.1]:${port}/ok`))).errorCode).toBe("ssrf_blocked");
    // The WHATWG URL parser normalises decimal and hex hosts to dotted quads before the check.
    expect((await sender.send(post(`http://2130706433:${port}/ok`))).errorCode).toBe("ssrf_blocked");
    expect((await sender.send(post(`http://0x7f.1:${port}/ok`))).errorCode).toBe("ssrf_blocked");
    expect(sink.seen).toHaveLength(0);
  });

  it("the guarded connector alone refuses IP literals (defence in depth for direct Agent use)", async () => {
    const agent = new Agent({ connect: createGuardedConnector(new AddressPolicy([])) });
    try {
      await expect(agent.request({ origin: sink.base, path: "/ok", method: "GET" })).rejects.toBeInstanceOf(
        SsrfBlockedError,
      );
    } finally {
      await agent.close();
    }
    expect(sink.seen).toHaveLength(0);
  });

  it("blocks a hostname whose resolved address is not allowed, at connect time", async () => {
    const result = await sender.send(post(`${sink.base.replace("127.0.0.1", "localhost")}/ok`));
    expect(result).toMatchObject({ ok: false, errorCode: "ssrf_blocked" });
    expect(result.errorMessage).toMatch(/localhost resolves to/);
    expect(sink.seen).toHaveLength(0);
  });
});
