/**
 * The inbox thread's entry: SqliteInboxStores on their own connections, one per open handle,
 * serving the calls ThreadedInboxStore posts (see there for why the inbox has a thread).
 *
 * Calls run in the order they arrive, each synchronously up to its first await, as they would on
 * the main thread: better-sqlite3 is synchronous, so every transaction is whole.
 */
import { parentPort } from "node:worker_threads";
import { openSqlite, type SqliteDatabase } from "../../store/sqlite/database.js";
import type { InsertOutcome, NewInboxItem } from "../types.js";
import type { Handoff, OutcomeBatch } from "./inbox-store.js";
import { SqliteInboxStore } from "./sqlite-inbox-store.js";
import {
  type InboxCall,
  type InboxReply,
  serializeError,
  type ThreadInsertOutcome,
} from "./thread-protocol.js";

const port = parentPort;
if (!port) throw new Error("inbox-thread runs only as a worker thread");

/** The inbox connection's page cache, in KiB (see "open"). */
const INBOX_CACHE_KIB = 8192;

const opened = new Map<number, { db: SqliteDatabase; store: SqliteInboxStore }>();
let nextHandle = 1;

function reply(id: number, value: unknown): void {
  port!.postMessage({ id, ok: true, value } satisfies InboxReply);
}

function replyError(id: number, error: unknown): void {
  port!.postMessage({ id, ok: false, error: serializeError(error) } satisfies InboxReply);
}

function storeOf(handle: unknown): SqliteInboxStore {
  const entry = opened.get(Number(handle));
  if (!entry) throw new Error(`inbox thread: inbox ${String(handle)} is not open`);
  return entry.store;
}

interface InsertCall {
  id: number;
  items: NewInboxItem[];
  takes: boolean[] | null;
  leaseUntil: number;
  /** Outcomes sent along with the insert, committed in its transaction. */
  settled: OutcomeBatch[];
}

/**
 * Inserts that arrive while the thread is busy are written together: one transaction and one
 * fsync for all of them. Each commit costs a fixed few hundred microseconds (mostly the fsync's
 * system time), so under load, when messages queue up, merging them is what keeps the cost per
 * request down; when idle, an insert waits only for the current turn of this thread's loop.
 */
const queuedInserts = new Map<number, InsertCall[]>();
let insertsScheduled = false;

function queueInsert(handle: number, call: InsertCall): void {
  const queue = queuedInserts.get(handle);
  if (queue) queue.push(call);
  else queuedInserts.set(handle, [call]);
  if (insertsScheduled) return;
  insertsScheduled = true;
  setImmediate(() => {
    insertsScheduled = false;
    const batches = [...queuedInserts];
    queuedInserts.clear();
    for (const [queuedHandle, calls] of batches) void insertTogether(queuedHandle, calls);
  });
}

/**
 * The intake decided on the main thread which new items the processor takes (the processor's
 * bookkeeping lives there); the insert follows those decisions and reports the taken items that
 * did not become new rows, which the main thread then gives back.
 */
async function insertTogether(handle: number, calls: InsertCall[]): Promise<void> {
  const items = calls.flatMap((c) => c.items);
  const taking = new Set<string>();
  for (const call of calls)
    call.items.forEach((item, i) => {
      if (call.takes?.[i] === true) taking.add(item.id);
    });
  const untaken = new Set<string>();
  // Calls merged here were posted within milliseconds of each other; their taken items share the
  // earliest lease end (a lease is minutes long, and an early end only makes an item due sooner).
  const leases = calls.filter((c) => c.takes?.includes(true)).map((c) => c.leaseUntil);
  const handoff: Handoff | undefined =
    taking.size > 0
      ? {
          leaseUntil: Math.min(...leases),
          take: (item) => taking.has(item.id),
          untake: (id) => untaken.add(id),
        }
      : undefined;
  try {
    const settled = calls.flatMap((c) => c.settled);
    const outcomes = await storeOf(handle).insertItems(items, handoff, settled);
    let at = 0;
    for (const call of calls) {
      const mine = outcomes.slice(at, at + call.items.length).map(slim);
      at += call.items.length;
      const value = { outcomes: mine, untaken: call.items.filter((i) => untaken.has(i.id)).map((i) => i.id) };
      reply(call.id, value);
    }
  } catch (error) {
    for (const call of calls) replyError(call.id, error);
  }
}

/** The item (and its body) is already on the main thread: send back only what it lacks. */
function slim(outcome: InsertOutcome): ThreadInsertOutcome {
  if (outcome.status !== "received" || !outcome.claimed) return outcome;
  return { id: outcome.id, status: "received", newestProcessedTime: outcome.claimed.newestProcessedTime };
}

async function run(call: InboxCall): Promise<unknown> {
  const [handle, ...args] = call.args;
  switch (call.method) {
    case "open": {
      const db = openSqlite(String(handle));
      // A smaller page cache than the engine's: on this connection every commit scanned the whole
      // cache's page table (pcache1TruncateUnsafe, from pager_end_transaction), so its cost grew
      // with the cache size: 6 % of this thread's CPU at 64 MiB, under 1 % at 8 MiB (perf, inbound
      // bench). The inbox's hot pages are the tails of its indexes, which 8 MiB holds many times over.
      db.pragma(`cache_size = -${INBOX_CACHE_KIB}`);
      const id = nextHandle++;
      // This thread does nothing else, so a durable commit may block it for its fsync: requests that
      // arrive meanwhile queue up and share the next commit (see queueInsert).
      opened.set(id, { db, store: new SqliteInboxStore(db, { syncInCommit: true }) });
      return id;
    }
    case "close": {
      const entry = opened.get(Number(handle));
      if (!entry) return undefined;
      opened.delete(Number(handle));
      await entry.store.close();
      entry.db.close();
      return undefined;
    }
    case "insertItems": {
      const [items, takes, leaseUntil, settled] = args as [
        NewInboxItem[],
        boolean[] | null,
        number,
        OutcomeBatch[] | undefined,
      ];
      storeOf(handle);
      queueInsert(Number(handle), { id: call.id, items, takes, leaseUntil, settled: settled ?? [] });
      return REPLIED_LATER;
    }
    default: {
      const store = storeOf(handle) as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
      const method = store[call.method];
      if (typeof method !== "function") throw new Error(`inbox thread: no method ${call.method}`);
      return method.apply(store, args);
    }
  }
}

/** An insert is answered by insertTogether, not by the message loop. */
const REPLIED_LATER = Symbol("replied later");

port.on("message", (call: InboxCall) => {
  run(call).then(
    (value) => value !== REPLIED_LATER && reply(call.id, value),
    (error: unknown) => replyError(call.id, error),
  );
});
