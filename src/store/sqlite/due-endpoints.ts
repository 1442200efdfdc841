/**
 * Which endpoints may have due deliveries, and from when: a lower bound per endpoint.
 *
 * Why: a claim that scans all due rows in time order must step over every row of an endpoint
 * at its cap (a hung endpoint can have thousands), on every claim. One process owns a SQLite
 * file and every write to deliveries goes through its store, so the store can remember where
 * due work is and probe just those endpoints through the (endpoint_id, next_attempt_at) index.
 * Entries are hints: a probe that finds nothing corrects them, and a periodic resync from the
 * table catches writers that bypassed this process.
 */
export class DueEndpoints {
  private readonly earliest = new Map<string, number>();

  note(endpointId: string, at: number): void {
    const current = this.earliest.get(endpointId);
    if (current === undefined || at < current) this.earliest.set(endpointId, at);
  }

  set(endpointId: string, at: number | undefined): void {
    if (at === undefined) this.earliest.delete(endpointId);
    else this.earliest.set(endpointId, at);
  }

  replaceAll(entries: Iterable<[string, number]>): void {
    this.earliest.clear();
    for (const [id, at] of entries) this.earliest.set(id, at);
  }

  /** Endpoints with work due by `now`, earliest first, leaving out `excluded`. */
  dueBy(now: number, excluded: ReadonlySet<string>): string[] {
    const due: [string, number][] = [];
    for (const [id, at] of this.earliest) if (at <= now && !excluded.has(id)) due.push([id, at]);
    due.sort((a, b) => a[1] - b[1]);
    return due.map(([id]) => id);
  }

  nextDueAt(): number | undefined {
    let min: number | undefined;
    for (const at of this.earliest.values()) if (min === undefined || at < min) min = at;
    return min;
  }
}
