import { type Clock, systemClock } from "./core/clock.js";
import type { HandshakeMode, PigeonConfig } from "./core/config.js";
import { Dispatcher, type DispatcherOptions } from "./delivery/dispatcher.js";
import { Handshaker } from "./delivery/handshake.js";
import { HttpSender } from "./delivery/http-sender.js";
import { Publisher } from "./delivery/publisher.js";
import { RetryPolicy } from "./delivery/retry-policy.js";
import { parseCidrList } from "./delivery/ssrf/cidr.js";
import { inboundSettings } from "./inbound/config.js";
import { Forwarder } from "./inbound/forwarder.js";
import { InboundService, type InboundSettings } from "./inbound/service.js";
import { inboxStoreFor } from "./inbound/store/open-inbox-store.js";
import { openStore } from "./store/open-store.js";
import type { Store } from "./store/store.js";
import type { Application, Endpoint } from "./store/types.js";

export interface EngineOptions {
  store: Store;
  clock?: Clock;
  dispatcher?: DispatcherOptions;
  /** Overrides of the inbound settings read from the config and PIGEON_INBOUND_* variables. */
  inbound?: Partial<InboundSettings>;
}

/**
 * The sending core assembled: store, SSRF-guarded sender, dispatcher, handshaker and publisher.
 * The HTTP API, the CLI and embedding applications all drive this one object.
 */
export class PigeonEngine {
  readonly store: Store;
  readonly clock: Clock;
  readonly sender: HttpSender;
  readonly dispatcher: Dispatcher;
  readonly handshaker: Handshaker;
  readonly publisher: Publisher;
  /** The receiving side: sources, `/in/{source}` intake, inbox processor, `inbound.on(type, fn)`. */
  readonly inbound: InboundService;

  /** Opens the store named by the config (or uses the one given) and assembles the engine. */
  static async create(
    config: Readonly<PigeonConfig>,
    options: Partial<EngineOptions> = {},
  ): Promise<PigeonEngine> {
    const store = options.store ?? (await openStore(config.databaseUrl));
    return new PigeonEngine(config, { ...options, store });
  }

  constructor(
    readonly config: Readonly<PigeonConfig>,
    options: EngineOptions,
  ) {
    this.store = options.store;
    this.clock = options.clock ?? systemClock;
    this.sender = new HttpSender({
      allowedNetworks: parseCidrList(config.allowedNetworks),
      maxResponseBytes: config.maxResponseBytes,
      // Endpoints often share a host (one receiver, many paths). A smaller pool per origin than
      // the dispatcher's own caps queued one endpoint's requests behind another's inside the HTTP
      // client: two hung endpoints on a host stalled a healthy third until they timed out. The
      // per-endpoint and global caps are the limits; the pool only has to be able to carry them.
      connectionsPerOrigin: config.globalConcurrency,
    });
    this.dispatcher = new Dispatcher(this.store, this.sender, config, this.clock, options.dispatcher);
    const retry = new RetryPolicy({
      scheduleMs: config.retryScheduleMs,
      jitter: config.retryJitter,
      retryAfterMaxMs: config.retryAfterMaxMs,
    });
    this.handshaker = new Handshaker(
      this.store,
      this.sender,
      retry,
      this.clock,
      config.requestTimeoutMs,
      config.pollIntervalMs,
      () => this.dispatcher.wake(),
    );
    this.publisher = new Publisher(this.store, this.clock, () => this.dispatcher.wake());
    this.inbound = new InboundService(
      {
        inbox: inboxStoreFor(this.store),
        clock: this.clock,
        forwarder: new Forwarder(this.store, this.publisher),
      },
      { ...inboundSettings(config), ...options.inbound },
    );
  }

  private unsubscribe: (() => void) | undefined;

  private workersRunning = false;

  /** Starts the workers: dispatcher and handshaker. An API-only process never calls this. */
  start(): void {
    this.workersRunning = true;
    this.unsubscribe = this.store.onNewWork(() => this.dispatcher.requestClaim());
    this.dispatcher.start();
    this.handshaker.start();
    void this.inbound.start();
  }

  async stop(): Promise<void> {
    this.unsubscribe?.();
    await this.inbound.stop();
    this.handshaker.stop();
    await this.dispatcher.stop();
    await this.sender.close();
    await this.store.close();
  }

  handshakeModeFor(app: Application): HandshakeMode {
    return app.handshake ?? this.config.handshakeMode;
  }

  /** Starts the handshake a new (or re-verified) endpoint needs; never blocks the API response. */
  beginHandshake(app: Application, endpoint: Endpoint): void {
    const mode = this.handshakeModeFor(app);
    if (mode === "off") return;
    if (!this.workersRunning) {
      // An API-only process leaves the request to a worker, whose handshake poller finds it due now.
      void this.store.scheduleHandshake(endpoint.id, 0, this.clock.now());
      return;
    }
    void this.handshaker.verify(endpoint, { retry: mode === "required" }).catch((error: unknown) => {
      console.error("pigeon: handshake failed unexpectedly", error);
    });
  }
}
