import { Worker } from "node:worker_threads";
import { deserializeError, type InboxCall, type InboxReply } from "./thread-protocol.js";

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
}

/**
 * The one inbox thread of this process, shared by every ThreadedInboxStore in it (a server has
 * one; a test process opens many, and a thread costs a module load to start).
 *
 * It is referenced only while a call is outstanding, so it never keeps a finished process alive
 * and never lets one exit with a call unanswered. If it dies, every outstanding call fails (the
 * intake answers 503, which senders retry) and the next call starts a new one.
 */
export class InboxThread {
  private static current: InboxThread | undefined;

  static get(): InboxThread {
    InboxThread.current ??= new InboxThread();
    return InboxThread.current;
  }

  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private dead: Error | undefined;

  private constructor() {
    this.worker = new Worker(entrySource(), { eval: true });
    this.worker.unref();
    this.worker.on("message", (reply: InboxReply) => this.settle(reply));
    this.worker.on("error", (error) => this.fail(error));
    this.worker.on("exit", (code) => this.fail(new Error(`the inbox thread exited (code ${code})`)));
  }

  /**
   * Stops the thread at once, failing whatever is outstanding; stores open on it reopen on a new
   * one at their next call. For an embedding app that wants its threads back, and for tests.
   */
  static async terminate(): Promise<void> {
    const thread = InboxThread.current;
    if (!thread) return;
    thread.fail(new Error("the inbox thread was stopped"));
    await thread.worker.terminate();
  }

  /** Whether this thread is gone; a store opened on it must open again on the next one. */
  get alive(): boolean {
    return this.dead === undefined;
  }

  call<T>(method: string, args: unknown[]): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      this.worker.postMessage({ id, method, args } satisfies InboxCall);
    });
  }

  private settle(reply: InboxReply): void {
    const waiter = this.pending.get(reply.id);
    if (!waiter) return;
    this.pending.delete(reply.id);
    if (this.pending.size === 0) this.worker.unref();
    if (reply.ok) waiter.resolve(reply.value);
    else waiter.reject(deserializeError(reply.error));
  }

  private fail(error: Error): void {
    if (this.dead) return;
    this.dead = error;
    if (InboxThread.current === this) InboxThread.current = undefined;
    if (this.pending.size > 0) console.error("pigeon: the inbox thread stopped", error);
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

/**
 * Starts the entry module next to this one: the compiled .js in a build, the .ts source under a
 * test runner, loaded through tsx, since a worker does not inherit the runner's transform.
 */
function entrySource(): string {
  const self = import.meta.url;
  if (self.endsWith(".ts")) {
    const entry = new URL("./inbox-thread.ts", self).href;
    return `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  }
  return `import(${JSON.stringify(new URL("./inbox-thread.js", self).href)})`;
}
