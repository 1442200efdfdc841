import type { IncomingMessage, ServerResponse } from "node:http";
import type { Clock } from "../core/clock.js";
import { FailureCounter } from "./failure-counter.js";
import type { Forwarder } from "./forwarder.js";
import { loadHandlerModule } from "./handler-module.js";
import { type HandlerOptions, HandlerRegistry } from "./handlers.js";
import { createIngestListener } from "./http-ingest.js";
import { toInboundEvent } from "./inbound-event.js";
import { Intake } from "./intake.js";
import { type ConsumeContext, InboxProcessor } from "./processor.js";
import { SourceRegistry } from "./source-registry.js";
import type { InboxStore, SourceStats } from "./store/inbox-store.js";
import { isUnsupportedInboxStore } from "./store/open-inbox-store.js";
import type { InboundHandler, InboxItem, ItemOutcome, Source } from "./types.js";

export interface InboundSettings {
  /** Largest request body accepted on an ingest URL (413 above). */
  maxBodyBytes: number;
  /** Claim lease; a crashed worker's items come due again after it. */
  leaseMs: number;
  /** Longest idle sleep of the processor. */
  pollIntervalMs: number;
  /** Most items in flight across all sources. */
  globalConcurrency: number;
  /** A module that registers handlers at start (`PIGEON_INBOUND_HANDLER`). */
  handlerModule?: string | undefined;
}

export interface InboundServiceDeps {
  inbox: InboxStore;
  clock: Clock;
  /** Gateway mode; absent where there is no delivery engine (the receiver helpers). */
  forwarder?: Forwarder | undefined;
  /** Observes committed outcomes (tests, metrics). */
  onCompleted?: (outcomes: readonly ItemOutcome[]) => void;
}

/** `/in/{source}` or `/in/{source}/anything`: the segment after /in/ names the source. */
export function sourceSegment(url: string | undefined): string | undefined {
  const match = /^\/in\/([^/?#]+)/.exec(url ?? "");
  if (!match) return undefined;
  try {
    const segment = decodeURIComponent(match[1]!);
    // No source id or uid holds NUL, and PostgreSQL cannot look one up with it: no such source
    // (404), where the failed lookup answered 503 and the sender retried for ever.
    return segment.includes("\u0000") ? undefined : segment;
  } catch {
    return undefined;
  }
}

/**
 * The receiving side assembled: sources, intake (verify → inbox → 2xx), processor and handlers.
 * The server mounts `listener` at `/in/`; the receiver helpers build one around their own inbox
 * file and a single source. Register handlers with `on` before `start`.
 */
export class InboundService {
  readonly inbox: InboxStore;
  readonly sources: SourceRegistry;
  readonly failures: FailureCounter;
  readonly intake: Intake;
  readonly processor: InboxProcessor;
  /** The node:http listener for `/in/{source}` URLs. */
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void;
  private readonly handlers = new HandlerRegistry();
  private readonly forwarder: Forwarder | undefined;
  private started: Promise<void> | undefined;

  constructor(
    deps: InboundServiceDeps,
    private readonly settings: InboundSettings,
  ) {
    this.inbox = deps.inbox;
    this.forwarder = deps.forwarder;
    this.sources = new SourceRegistry(deps.inbox, deps.clock);
    this.failures = new FailureCounter(deps.inbox);
    this.processor = new InboxProcessor(
      {
        store: deps.inbox,
        clock: deps.clock,
        sources: () => this.sources.all(),
        consumableSourceIds: (sources) => this.consumable(sources),
        consume: (item, source, ctx) => this.consume(item, source, ctx),
        ...(deps.onCompleted ? { onCompleted: deps.onCompleted } : {}),
      },
      {
        leaseMs: settings.leaseMs,
        pollIntervalMs: settings.pollIntervalMs,
        globalConcurrency: settings.globalConcurrency,
      },
    );
    this.intake = new Intake(deps.inbox, this.failures, deps.clock, this.processor);
    this.processor.carryWith(this.intake);
    this.sources.onChange = () => this.processor.wake();
    this.listener = createIngestListener({
      intake: this.intake,
      maxBodyBytes: settings.maxBodyBytes,
      resolveSource: async (req) => {
        const segment = sourceSegment(req.url);
        return segment === undefined ? undefined : this.sources.resolve(segment);
      },
    });
  }

  /**
   * Hands items of `eventType` to `handler`: an exact type, `prefix.*`, or `*` for all. A handler
   * that throws is retried with backoff (throw NonRetryableError to fail at once); it may see an
   * item more than once after a crash, so make it idempotent on `event.id`. Returns an unsubscribe.
   */
  on(eventType: string, handler: InboundHandler, options: HandlerOptions = {}): () => void {
    const off = this.handlers.on(eventType, handler, options);
    this.processor.wake();
    return () => {
      off();
      // The processor's view of which sources have a consumer changes too: without a claim to
      // refresh it, items arriving meanwhile were handed over and found nobody (see consume).
      this.processor.wake();
    };
  }

  /** Loads the handler module (if any), then starts processing. Intake works without start. */
  start(): Promise<void> {
    this.started ??= (async () => {
      if (isUnsupportedInboxStore(this.inbox)) return;
      await this.inbox.start();
      if (this.settings.handlerModule) {
        try {
          await loadHandlerModule(this.settings.handlerModule, this);
        } catch (error) {
          // Processing without the handlers would mark items processed that nobody saw; keep
          // them in the inbox instead and say why.
          console.error(`pigeon: inbound handler module not loaded; items stay queued: ${String(error)}`);
          return;
        }
      }
      this.processor.start();
    })();
    return this.started;
  }

  async stop(): Promise<void> {
    await this.started;
    await this.processor.stop();
    await this.failures.flush();
    await this.inbox.close();
  }

  /** Counts per status and verification failures, including every failure counted so far. */
  async stats(source: Source): Promise<SourceStats> {
    await this.failures.flush();
    return this.inbox.sourceStats(source.id);
  }

  private consumable(sources: Source[]): string[] | null {
    const ids = sources
      .filter((s) => (s.options.forward !== undefined && this.forwarder) || this.handlers.servesSource(s))
      .map((s) => s.id);
    return ids.length === sources.length ? null : ids;
  }

  private async consume(item: InboxItem, source: Source, ctx: ConsumeContext): Promise<void> {
    const handlers = this.handlers.matching(item.eventType, source);
    const forward = source.options.forward;
    // Handed over while its source had a consumer, which has gone since (its handlers were
    // unsubscribed): recorded as processed, nobody would ever have seen it. It is kept, and
    // retried, for the next handler instead. (A source with handlers, none for this type, still
    // records the item as processed: its handlers chose not to take that type.)
    if (handlers.length === 0 && !(forward && this.forwarder) && !this.handlers.servesSource(source))
      throw new Error(
        "no handler is registered for this source any more; the item is kept for a later attempt",
      );
    if (handlers.length > 0) {
      const event = toInboundEvent(item, source, ctx);
      for (const handler of handlers) await handler(event);
    }
    if (forward && this.forwarder) await this.forwarder.forward(item, source, forward);
  }
}
