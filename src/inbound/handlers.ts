import type { InboundHandler, Source } from "./types.js";

export interface HandlerOptions {
  /** Only items of this source (id or uid). */
  source?: string;
}

interface Registration {
  pattern: string;
  handler: InboundHandler;
  source: string | undefined;
}

/** `*` matches everything, `employee.*` every type under `employee.`, anything else exactly. */
function matches(pattern: string, eventType: string | null): boolean {
  if (pattern === "*") return true;
  if (eventType === null) return false;
  if (pattern.endsWith(".*")) return eventType.startsWith(pattern.slice(0, -1));
  return pattern === eventType;
}

/** In-process handlers by event type: what `pigeon.inbound.on("employee.created", fn)` fills. */
export class HandlerRegistry {
  private readonly registrations: Registration[] = [];

  /** Registers `handler`; returns a function that removes it again. */
  on(eventType: string, handler: InboundHandler, options: HandlerOptions = {}): () => void {
    if (typeof eventType !== "string" || eventType === "")
      throw new TypeError('on(eventType, handler): eventType must be a non-empty string such as "*"');
    if (typeof handler !== "function")
      throw new TypeError("on(eventType, handler): handler must be a function");
    const registration: Registration = { pattern: eventType, handler, source: options.source };
    this.registrations.push(registration);
    return () => {
      const index = this.registrations.indexOf(registration);
      if (index >= 0) this.registrations.splice(index, 1);
    };
  }

  get size(): number {
    return this.registrations.length;
  }

  /** Whether any handler could take items of `source` (so its items are worth claiming). */
  servesSource(source: Source): boolean {
    return this.registrations.some(
      (r) => r.source === undefined || r.source === source.id || r.source === source.uid,
    );
  }

  /** The handlers for one item, in registration order. */
  matching(eventType: string | null, source: Source): InboundHandler[] {
    return this.registrations
      .filter(
        (r) =>
          (r.source === undefined || r.source === source.id || r.source === source.uid) &&
          matches(r.pattern, eventType),
      )
      .map((r) => r.handler);
  }
}
