/**
 * Diagnostic probe, not part of `npm run bench`: what one intake commit costs the SQLite inbox, on
 * the event loop and in the WAL, without HTTP or a load generator. A file inbox opened as the
 * engine opens it takes batches of new items (as the intake's group commit forms them, 17 a turn at
 * 64 requests in flight) and, with `--carry`, the outcomes of the previous batch in the same
 * transaction, as the processor hands them to the intake (OutcomeCarry); without it each batch's
 * outcomes commit on their own, as when no insert falls in their turn. Automatic checkpoints are off,
 * so the WAL only grows and its growth per commit is the pages each commit wrote.
 *
 * Prints µs of event-loop time per item (the synchronous part of the calls; the fsync runs on the
 * thread pool) and WAL pages per commit, measured over the second half of the run (the first half
 * grows the tables to size), then which b-trees those pages belong to (SQLite's dbstat).
 *
 *   node --import tsx bench/probes/inbox-commit.ts [--items 60000] [--batch 17] [--ids bench|random] [--carry] [--page-size 4096]
 *
 * `--ids bench` makes event ids as bench/inbound.ts does (one prefix, a counter: neighbours in the
 * de-duplication index), `random` as providers with random event ids do (GitHub, Stripe).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import Database from "better-sqlite3";
import { newId } from "../../src/core/ids.js";
import { openSqliteInbox } from "../../src/inbound/store/open-inbox-store.js";
import type { ItemOutcome, NewInboxItem } from "../../src/inbound/types.js";

const { values } = parseArgs({
  options: {
    items: { type: "string", default: "60000" },
    batch: { type: "string", default: "17" },
    ids: { type: "string", default: "bench" },
    carry: { type: "boolean", default: false },
    "page-size": { type: "string" },
  },
});
const total = Number(values.items);
const batch = Number(values.batch);
if (!Number.isInteger(total) || total <= 0) throw new Error("--items must be a positive integer");
if (!Number.isInteger(batch) || batch <= 0) throw new Error("--batch must be a positive integer");
if (values.ids !== "bench" && values.ids !== "random") throw new Error("--ids must be bench or random");

const dir = mkdtempSync(join(tmpdir(), "pigeon-probe-inbox-"));
const file = join(dir, "pigeon.db");
if (values["page-size"]) {
  // Only a new file takes a page size, and only before WAL mode: set it, then let the inbox migrate.
  const db = new Database(file);
  db.pragma(`page_size = ${Number(values["page-size"])}`);
  db.exec("CREATE TABLE probe_init (x); DROP TABLE probe_init;");
  db.close();
}
const store = openSqliteInbox(file);
store.db.pragma("wal_autocheckpoint = 0");
const pageSize = Number(store.db.pragma("page_size", { simple: true }));
const frameBytes = 24 + pageSize;
const now = Date.now();
await store.createSource({
  id: "src_probe",
  uid: null,
  name: "probe",
  provider: "standard-webhooks",
  secrets: ["whsec_cHJvYmU="],
  options: {},
  createdAt: now,
  updatedAt: now,
});

// A typical webhook as bench/inbound.ts sends it: ~450 bytes of JSON and its signature headers.
const filler = randomBytes(96).toString("hex");
let made = 0;
function newItem(): NewInboxItem {
  const n = made++;
  const eventId = values.ids === "random" ? `evt_${randomBytes(12).toString("hex")}` : `msg_probe_${n}`;
  const body = Buffer.from(
    JSON.stringify({ type: "employee.created", data: { id: eventId, name: "Ada", filler } }),
  );
  const at = Date.now();
  return {
    id: newId("in", at),
    sourceId: "src_probe",
    eventId,
    eventType: "employee.created",
    eventTime: null,
    orderingKey: null,
    method: "POST",
    path: "/in/src_probe",
    query: "",
    headers: {
      host: "127.0.0.1:3000",
      "content-type": "application/json",
      "content-length": String(body.length),
      "webhook-id": eventId,
      "webhook-timestamp": String(Math.floor(at / 1000)),
      "webhook-signature": `v1,${randomBytes(32).toString("base64")}`,
    },
    body,
    contentType: "application/json",
    bodyKind: "json",
    receivedAt: at,
  };
}

const walBytes = (): number => {
  try {
    return statSync(`${file}-wal`).size;
  } catch {
    return 0;
  }
};
const handoff = { leaseUntil: now + 120_000, take: () => true, untake: () => undefined };
const processed = (items: NewInboxItem[]): ItemOutcome[] =>
  items.map((item) => ({ id: item.id, sourceId: item.sourceId, result: "processed", stale: false }));

let measuredCommits = 0;
let measuredItems = 0;
let pages = 0;
let loopMs = 0;
let previous: NewInboxItem[] = [];
while (made < total) {
  const items = Array.from({ length: batch }, newItem);
  const measured = made > total / 2;
  const walBefore = walBytes();
  let commits = 1;
  const started = performance.now();
  let pending: Promise<unknown>;
  if (values.carry) {
    const outcomes = processed(previous);
    pending = store.insertItems(
      items,
      handoff,
      outcomes.length > 0
        ? { outcomes, now: Date.now(), recorded: () => undefined, failed: (error) => console.error(error) }
        : undefined,
    );
  } else {
    pending = store.insertItems(items, handoff);
    if (previous.length > 0) {
      commits = 2;
      pending = Promise.all([pending, store.completeItems(processed(previous), Date.now())]);
    }
  }
  const syncPart = performance.now() - started;
  await pending;
  previous = items;
  if (measured) {
    measuredCommits += commits;
    measuredItems += items.length;
    pages += (walBytes() - walBefore) / frameBytes;
    loopMs += syncPart;
  }
}

// Which b-tree each page of the last 200 commits belongs to.
const wal = readFileSync(`${file}-wal`);
const commitsPages: number[][] = [];
let current: number[] = [];
for (let offset = 32; offset + frameBytes <= wal.length; offset += frameBytes) {
  current.push(wal.readUInt32BE(offset));
  if (wal.readUInt32BE(offset + 4) !== 0) {
    commitsPages.push(current);
    current = [];
  }
}
const owners = new Map<number, string>();
for (const row of store.db.prepare("SELECT name, pageno, pagetype FROM dbstat").all() as {
  name: string;
  pageno: number;
  pagetype: string;
}[])
  owners.set(row.pageno, `${row.name} (${row.pagetype})`);
const last = commitsPages.slice(-200);
const byTree = new Map<string, number>();
for (const commit of last)
  for (const page of commit) {
    const owner = owners.get(page) ?? (page === 1 ? "database header" : "free");
    byTree.set(owner, (byTree.get(owner) ?? 0) + 1);
  }

await store.close();
rmSync(dir, { recursive: true, force: true });

const summary = {
  probe: "inbox-commit",
  settings: { items: total, batch, ids: values.ids, carry: values.carry, pageSize },
  eventLoopUsPerItem: Number(((loopMs * 1000) / measuredItems).toFixed(1)),
  commitsPerBatch: measuredCommits / (measuredItems / batch),
  walPagesPerBatch: Number((pages / (measuredItems / batch)).toFixed(2)),
  walPagesPerCommitByTree: Object.fromEntries(
    [...byTree].sort((a, b) => b[1] - a[1]).map(([tree, n]) => [tree, Number((n / last.length).toFixed(2))]),
  ),
};
console.log(JSON.stringify(summary, null, 2));
console.log(
  `\n${summary.eventLoopUsPerItem} µs an item on the event loop, ${summary.walPagesPerBatch} WAL pages a batch of ${batch} (${summary.commitsPerBatch} commits)`,
);
