/**
 * A loopback HTTP sink in its own process, so neither the load generator nor Pigeon shares its
 * event loop. Paths starting with /hang are never answered; /delay/{ms}/… are answered {ms}
 * milliseconds after they arrive (an endpoint that takes its time; the arrival is counted at once).
 * Talks to its parent over IPC:
 * sends {port} when listening; answers "stats" with counts and arrival times per path.
 */
import { createServer, type ServerResponse } from "node:http";

const arrivals = new Map<string, number[]>();
const seqArrivals: [number, number][] = [];
let total = 0;
let firstAt = 0;
let lastAt = 0;
const times: number[] = [];

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const path = req.url ?? "/";
    if (path.startsWith("/hang")) return;
    const now = Date.now();
    total++;
    if (firstAt === 0) firstAt = now;
    lastAt = now;
    times.push(now);
    const list = arrivals.get(path) ?? [];
    if (list.length === 0) arrivals.set(path, list);
    list.push(now);
    const seq = req.headers["x-bench-seq"];
    if (typeof seq === "string") seqArrivals.push([Number(seq), now]);
    else if (path.startsWith("/lat")) {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString()) as { seq?: number };
        if (typeof body.seq === "number") seqArrivals.push([body.seq, now]);
      } catch {
        // not a latency probe
      }
    }
    const delay = /^\/delay\/(\d+)\//.exec(path);
    if (delay) setTimeout(() => answer(res), Number(delay[1]));
    else answer(res);
  });
});
server.keepAliveTimeout = 60_000;

function answer(res: ServerResponse): void {
  res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
  res.end("ok");
}

server.listen(0, "127.0.0.1", () => {
  const address = server.address() as { port: number };
  process.send?.({ port: address.port });
});

process.on("message", (msg: string) => {
  if (msg === "stats") {
    process.send?.({
      total,
      firstAt,
      lastAt,
      times,
      byPath: Object.fromEntries([...arrivals].map(([p, l]) => [p, l.length])),
      seqArrivals,
    });
  } else if (msg === "reset") {
    arrivals.clear();
    seqArrivals.length = 0;
    total = 0;
    firstAt = 0;
    lastAt = 0;
    times.length = 0;
    process.send?.({ reset: true });
  }
});
process.on("disconnect", () => process.exit(0));
