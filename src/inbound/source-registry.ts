import type { Clock } from "../core/clock.js";
import { errors } from "../core/errors.js";
import { newId } from "../core/ids.js";
import type { Page, PageQuery } from "../store/types.js";
import type { ProviderName } from "./providers/types.js";
import { sourceProblems } from "./source-options.js";
import type { InboxStore } from "./store/inbox-store.js";
import type { Source, SourceOptions } from "./types.js";

export interface SourceInput {
  uid?: string | null;
  name: string;
  provider: ProviderName | string;
  secrets: string[];
  options?: SourceOptions | null;
}

/**
 * Sources with a read-through cache. Every ingest request looks its source up, so the lookup must
 * not cost a query; changes go through this object, which drops the cache. One process owns a
 * SQLite file, so the cache is always current there. (A shared PostgreSQL backend will need
 * invalidation across processes, e.g. LISTEN/NOTIFY, or a short TTL.)
 */
export class SourceRegistry {
  private readonly byKey = new Map<string, Source>();
  private everything: Promise<Source[]> | undefined;

  constructor(
    private readonly store: InboxStore,
    private readonly clock: Clock,
  ) {}

  /** The source for an ingest URL segment (id or uid). */
  async resolve(idOrUid: string): Promise<Source | undefined> {
    const cached = this.byKey.get(idOrUid);
    if (cached) return cached;
    const source = await this.store.getSource(idOrUid);
    if (source) {
      this.byKey.set(source.id, source);
      if (source.uid) this.byKey.set(source.uid, source);
    }
    return source;
  }

  /** Every source; the processor reads caps and retry settings from this list. */
  all(): Promise<Source[]> {
    if (!this.everything) {
      this.everything = this.store.allSources();
      this.everything.catch(() => {
        this.everything = undefined;
      });
    }
    return this.everything;
  }

  list(query: PageQuery): Promise<Page<Source>> {
    return this.store.listSources(query);
  }

  async create(input: SourceInput): Promise<Source> {
    const now = this.clock.now();
    const source = this.check({
      id: newId("src", now),
      uid: input.uid ?? null,
      name: input.name,
      provider: input.provider as ProviderName,
      secrets: input.secrets,
      options: input.options ?? {},
      createdAt: now,
      updatedAt: now,
    });
    await this.store.createSource(source);
    this.invalidate();
    return source;
  }

  /** Replaces a source's settings (PUT; PATCH merges before calling this). */
  async update(existing: Source, input: SourceInput): Promise<Source> {
    const source = this.check({
      ...existing,
      uid: input.uid === undefined ? existing.uid : input.uid,
      name: input.name,
      provider: input.provider as ProviderName,
      secrets: input.secrets,
      options: input.options ?? {},
      updatedAt: this.clock.now(),
    });
    await this.store.updateSource(source);
    this.invalidate();
    return source;
  }

  async remove(source: Source): Promise<void> {
    await this.store.deleteSource(source.id);
    this.invalidate();
  }

  invalidate(): void {
    this.byKey.clear();
    this.everything = undefined;
    this.onChange?.();
  }

  /** Called after any change, so the processor re-reads caps and settings. */
  onChange: (() => void) | undefined;

  private check(source: Source): Source {
    const issues = sourceProblems(source.provider, source.secrets, source.options);
    if (typeof source.name !== "string" || source.name === "")
      issues.push({ loc: ["body", "name"], msg: "must be a non-empty string", type: "value_error" });
    if (
      source.uid !== null &&
      (source.uid.startsWith("src_") || !/^[a-zA-Z0-9\-_.]{1,256}$/.test(source.uid))
    ) {
      issues.push({
        loc: ["body", "uid"],
        msg: "must be 1-256 letters, digits or -_. and must not start with 'src_' (that prefix is for ids)",
        type: "value_error",
      });
    }
    if (issues.length > 0) throw errors.validation(issues);
    return source;
  }
}
