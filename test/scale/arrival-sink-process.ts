/**
 * Child process for ArrivalSinks (helpers.ts): `count` loopback endpoints that stamp each request's
 * arrival, in an event loop that does nothing else. Why a process of its own: in the test's process
 * the stamps waited behind the test's own work (publishing 20,000 messages over HTTP), and a stall of
 * ~150 ms there bunched the stamps of requests that had arrived evenly spaced, so an endpoint's rate
 * limit read as exceeded at the sink when the sends were not.
 *
 * IPC: sends `{ ports }` once listening; answers `"counts"` with `{ counts: { total, unique }[] }`
 * and `"arrivals"` with `{ arrivals: Arrival[][] }`.
 */
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

interface Arrival {
  at: number;
  n: number;
  webhookId: string;
}

const count = Number(process.argv[2] ?? "1");
const arrivals: Arrival[][] = Array.from({ length: count }, () => []);
const ports: number[] = [];
const now = (): number => performance.timeOrigin + performance.now();

for (let i = 0; i < count; i++) {
  const list = arrivals[i]!;
  const server = createServer((req, res) => {
    const at = now();
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const { n } = JSON.parse(Buffer.concat(chunks).toString()) as { n: number };
      list.push({ at, n, webhookId: String(req.headers["webhook-id"]) });
      res.writeHead(200, { "content-type": "text/plain", "content-length": "2" });
      res.end("ok");
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  ports.push((server.address() as AddressInfo).port);
}
process.send?.({ ports });

process.on("message", (msg: string) => {
  if (msg === "counts") {
    process.send?.({
      counts: arrivals.map((list) => ({ total: list.length, unique: new Set(list.map((a) => a.n)).size })),
    });
  } else if (msg === "arrivals") {
    process.send?.({ arrivals });
  }
});
process.on("disconnect", () => process.exit(0));
