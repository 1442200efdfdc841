import type { IncomingMessage, ServerResponse } from "node:http";
import { type Clock, systemClock } from "../core/clock.js";
import { createIngestListener } from "../inbound/http-ingest.js";
import type { ProviderName } from "../inbound/providers/types.js";
import { InboundService } from "../inbound/service.js";
import { sourceProblems } from "../inbound/source-options.js";
import type { InboxStore } from "../inbound/store/inbox-store.js";
import { openSqliteInbox } from "../inbound/store/open-inbox-store.js";
import { SqliteInboxStore } from "../inbound/store/sqlite-inbox-store.js";
import type { InboundHandler, InboxItem, Source, SourceOptions } from "../inbound/types.js";
import { openSqlite } from "../store/sqlite/database.js";

export interface ReceiverOptions extends Omit<SourceOptions, "forward"> {
  /** How the sender signs. Default `standard-webhooks` (Pigeon, Svix and Standard Webhooks senders). */
  provider?: ProviderName;
  /** The signing secret, or several during a rotation. */
  secrets: string | string[];
  /** The SQLite file that holds the inbox; created if missing. Keep it on a durable disk. */
  inboxPath: string;
  /** Called once per accepted event (at least once across crashes: be idempotent on `event.id`). */
  handler: InboundHandler;
  /** Names the source inside the inbox file; one file can hold several receivers. Default `receiver`. */
  name?: string;
  /** Largest body accepted (413 above). Default 1 MiB. */
  maxBodyBytes?: number;
  /** Longest idle sleep between looks for due retries. Default 1000 ms. */
  pollIntervalMs?: number;
  /** How long a claim holds an item before a restarted receiver may take it. Default 2 min. */
  leaseMs?: number;
  clock?: Clock;
}

/** A node:http request listener, plus the lifecycle of the processing behind it. */
export interface Receiver {
  (req: IncomingMessage, res: ServerResponse): void;
  /** Starts handing stored events to the handler (requests are accepted before this too). */
  start(): Promise<void>;
  /** Lets running handlers finish, records them, and closes the inbox file. */
  stop(): Promise<void>;
  /** The inbox, for inspection (`listItems`, `getItem`). */
  readonly inbox: InboxStore;
  /** The source this receiver stores its items under. */
  source(): Promise<Source>;
  /** The inbox items of this receiver, newest first. */
  items(status?: InboxItem["status"]): Promise<InboxItem[]>;
}

/**
 * Verify → inbox (a durable SQLite file) → 2xx → handler, for any Node HTTP app:
 *
 *     const receiver = createReceiver({ secrets: "whsec_…", inboxPath: "inbox.db", handler });
 *     http.createServer(receiver).listen(3000);
 *     await receiver.start();
 *
 * The same intake, inbox and processor as `pigeon serve`, mounted on one source: duplicates
 * (same event id) are acknowledged and not handled again, stale events (with `orderingKey`) are
 * skipped, failures are retried with backoff, and Pigeon's `webhook.verification` handshake is
 * answered by itself.
 */
export function createReceiver(options: ReceiverOptions): Receiver {
  const {
    provider = "standard-webhooks",
    secrets,
    inboxPath,
    handler,
    name = "receiver",
    maxBodyBytes = 1024 * 1024,
    pollIntervalMs = 1000,
    leaseMs = 120_000,
    clock = systemClock,
    ...sourceOptions
  } = options;
  const secretList = typeof secrets === "string" ? [secrets] : secrets;
  if (typeof handler !== "function") throw new TypeError("createReceiver: handler must be a function");
  if (typeof inboxPath !== "string" || inboxPath === "")
    throw new TypeError("createReceiver: inboxPath must name a SQLite file, e.g. ./inbox.db");
  const problems = sourceProblems(provider, secretList, sourceOptions, []);
  if (problems.length > 0) {
    throw new TypeError(`createReceiver: ${problems.map((p) => `${p.loc.join(".")}: ${p.msg}`).join("; ")}`);
  }

  const inbox = openInbox(inboxPath);
  const service = new InboundService(
    { inbox, clock },
    {
      maxBodyBytes,
      leaseMs,
      pollIntervalMs,
      globalConcurrency: sourceOptions.concurrency ?? 8,
    },
  );
  service.on("*", handler);

  // The receiver's settings are its source row, kept in the inbox file like a server's sources.
  const ready: Promise<Source> = (async () => {
    const input = { uid: name, name, provider, secrets: secretList, options: sourceOptions };
    const existing = await service.sources.resolve(name);
    return existing ? service.sources.update(existing, input) : service.sources.create(input);
  })();
  ready.catch(() => undefined); // surfaced by start() and by each request's 503

  const listener = createIngestListener({
    intake: service.intake,
    maxBodyBytes,
    resolveSource: () => ready,
  });

  let stopped = false;
  const receiver = ((req: IncomingMessage, res: ServerResponse) => listener(req, res)) as Receiver;
  Object.assign(receiver, {
    inbox,
    async start() {
      await ready;
      await service.start();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await ready.catch(() => undefined);
      // Closes the inbox and, with it, its connection.
      await service.stop();
    },
    source: () => ready,
    async items(status?: InboxItem["status"]) {
      const source = await ready;
      const out: InboxItem[] = [];
      let iterator: string | undefined;
      for (;;) {
        const page = await inbox.listItems(source.id, { limit: 250, iterator, status });
        out.push(...page.data);
        if (page.done || page.iterator === null) return out;
        iterator = page.iterator;
      }
    },
  });
  return receiver;
}

/**
 * The inbox file as `pigeon serve` has it: a connection of its own, its fsyncs waited for off the
 * event loop (see openSqliteInbox). The file is created and migrated here, so a bad path fails
 * createReceiver itself. `:memory:` keeps the one connection (a second would see another database),
 * owned by the inbox as a file's is, so closing the inbox closes either.
 */
function openInbox(path: string): InboxStore {
  return path === ":memory:"
    ? new SqliteInboxStore(openSqlite(path), { ownsConnection: true })
    : openSqliteInbox(path);
}
