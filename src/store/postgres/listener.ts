import pg from "pg";
import { quoteIdent } from "./connection.js";

export interface WorkListenerOptions {
  /** First reconnect delay; doubles per failed try. Default 100 ms. */
  minBackoffMs?: number;
  /** Longest reconnect delay. Default 5 s. */
  maxBackoffMs?: number;
}

/**
 * LISTEN on a dedicated connection (a pooled one would be handed to someone else, and LISTEN is
 * per session). Started by the first subscriber. If the connection dies it reconnects with
 * exponential backoff and, once listening again, tells every subscriber once: a notification
 * sent while it was away is lost, and the dispatcher's poll is cheaper than a missed wake-up.
 */
export class WorkListener {
  private readonly listeners = new Set<() => void>();
  private client: pg.Client | undefined;
  private started = false;
  private closed = false;
  private failures = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private ready: Promise<void> | undefined;
  private resolveReady: (() => void) | undefined;
  private readonly minBackoffMs: number;
  private readonly maxBackoffMs: number;

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly channel: string,
    options: WorkListenerOptions = {},
  ) {
    this.minBackoffMs = options.minBackoffMs ?? 100;
    this.maxBackoffMs = options.maxBackoffMs ?? 5_000;
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    if (!this.started && !this.closed) {
      this.started = true;
      this.resetReady();
      void this.connect();
    }
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Resolves once LISTEN is in effect (again, after a reconnect). For tests and start-up. */
  whenListening(): Promise<void> {
    return this.ready ?? Promise.resolve();
  }

  /** The listening connection's backend pid, or undefined while disconnected. */
  get backendPid(): number | undefined {
    return (this.client as unknown as { processID?: number } | undefined)?.processID ?? undefined;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const client = this.client;
    this.client = undefined;
    this.resolveReady?.();
    if (client) await client.end().catch(() => {});
  }

  private resetReady(): void {
    if (this.resolveReady) return;
    this.ready = new Promise<void>((resolve) => {
      this.resolveReady = () => {
        this.resolveReady = undefined;
        resolve();
      };
    });
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client(this.clientConfig);
    let lost = false;
    const onLost = () => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      client.end().catch(() => {});
      this.scheduleReconnect();
    };
    // Errors arrive as events once connected (e.g. the backend was terminated); without a
    // listener they would crash the process.
    client.on("error", onLost);
    client.on("end", onLost);
    client.on("notification", (message) => {
      if (message.channel === this.channel) this.emit();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.channel)}`);
    } catch {
      onLost();
      return;
    }
    if (this.closed || lost) {
      await client.end().catch(() => {});
      return;
    }
    this.client = client;
    const reconnected = this.failures > 0;
    this.failures = 0;
    this.resolveReady?.();
    if (reconnected) this.emit();
  }

  private scheduleReconnect(): void {
    if (this.closed) return;
    this.resetReady();
    const delay = Math.min(this.maxBackoffMs, this.minBackoffMs * 2 ** this.failures);
    this.failures += 1;
    // Jitter so a fleet of workers does not reconnect in lockstep after a database restart.
    this.retryTimer = setTimeout(() => void this.connect(), delay * (0.5 + Math.random() / 2));
    this.retryTimer.unref?.();
  }

  private emit(): void {
    for (const listener of [...this.listeners]) {
      try {
        listener();
      } catch {
        // A subscriber's bug must not stop the others from waking.
      }
    }
  }
}
