import { type FileHandle, open } from "node:fs/promises";
import { errorMessage } from "../../core/errors.js";
import type { InsertOutcome } from "../types.js";

/**
 * Makes committed WAL frames durable without blocking the event loop.
 *
 * Why: with `synchronous=FULL` every commit fsyncs the WAL inside better-sqlite3's synchronous
 * call, so the whole process stalls for the disk (about 1 ms per commit here) and intake cannot
 * parse, verify or answer anything meanwhile. Instead the inbox commits with `synchronous=NORMAL`
 * (frames written to the WAL, not yet synced) and then awaits `sync()`, which fsyncs the WAL file
 * on libuv's thread pool. A request is answered only after that fsync returns, so the guarantee is
 * the same as FULL's (the commit frame is on disk before the 2xx); only the waiting moved off the
 * main thread. Checkpoints stay safe: in WAL mode SQLite syncs the WAL before copying it into the
 * database file, whatever the synchronous setting.
 *
 * Callers arriving while an fsync runs share the next one: their frames may have been written
 * after the running fsync started, so it cannot vouch for them.
 */
export class WalSync {
  private running: Promise<void> | undefined;
  private next: Promise<void> | undefined;
  private handle: Promise<FileHandle | undefined> | undefined;
  private closed = false;

  constructor(private readonly walPath: string) {}

  /** Resolves once every frame committed before the call is on disk. */
  sync(): Promise<void> {
    if (!this.running) {
      this.running = this.fsync().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.next ??= this.running.then(
      () => this.startQueued(),
      () => this.startQueued(),
    );
    return this.next;
  }

  /** Closes the descriptor; call when the database connection closes. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running?.catch(() => undefined);
    const handle = await this.handle?.catch(() => undefined);
    this.handle = undefined;
    await handle?.close();
  }

  private startQueued(): Promise<void> {
    this.next = undefined;
    return this.sync();
  }

  private async fsync(): Promise<void> {
    if (this.closed) throw new Error("the inbox is closed");
    // Kept open: an open per sync costs two more thread-pool round trips. The WAL file keeps its
    // inode while any connection is open (SQLite deletes it only when the last one closes).
    this.handle ??= open(this.walPath, "r").catch((error: NodeJS.ErrnoException) => {
      this.handle = undefined;
      // No WAL file: the last connection closed, which checkpoints (with syncs) and deletes it.
      if (error.code === "ENOENT") return undefined;
      throw error;
    });
    const handle = await this.handle;
    await handle?.sync();
  }
}

/**
 * A write was committed but its fsync failed, so it is not known to be on disk: its requests must
 * not be answered 2xx. Still, the commit happened (a crash of the process keeps it), and items the
 * processor took in it are stored under its lease and counted as its own: `outcomes` (what the
 * write would have returned) lets the caller hand those on, where dropping them held their slots
 * and ordering keys for ever.
 */
export class UnsyncedCommitError extends Error {
  constructor(
    readonly outcomes: InsertOutcome[],
    cause: unknown,
  ) {
    super(`committed, but the WAL fsync failed: ${errorMessage(cause)}`, {
      cause,
    });
    this.name = "UnsyncedCommitError";
  }
}
