import type { IncomingHttpHeaders } from "node:http";
import type { Clock } from "../core/clock.js";
import { newId } from "../core/ids.js";
import { bodyKindOf, extract } from "./extract.js";
import type { FailureCounter } from "./failure-counter.js";
import { GroupCommit } from "./group-commit.js";
import { answerHandshake, verifyInbound } from "./providers/index.js";
import { toInboundRequest } from "./providers/request.js";
import { providerOptions } from "./source-options.js";
import type { Handoff, InboxStore, OutcomeCarry } from "./store/inbox-store.js";
import { UnsyncedCommitError } from "./store/wal-sync.js";
import type { ClaimedItem, InsertOutcome, NewInboxItem, Source } from "./types.js";

/**
 * What the intake needs of the processor: the handoff of new items, outcomes to record in the
 * same commit, and a nudge for queued ones.
 */
export interface IntakeLink {
  handoff(): Handoff | undefined;
  carry(): OutcomeCarry | undefined;
  adopt(claims: ClaimedItem[]): void;
  noteBacklog(): void;
}

/** A request as read off the wire, before Pigeon looks at it. */
export interface RawRequest {
  method: string;
  /** Path and query exactly as requested (`req.url`). */
  target: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

/** The complete HTTP answer; header names lower-case. */
export interface IntakeAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

export function jsonAnswer(status: number, code: string, detail: string): IntakeAnswer {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ code, detail }),
  };
}

/** What to do to fix each verification failure; the provider's message says what was wrong. */
const HINTS: Record<string, string> = {
  missing_signature: "Sign the request as the source's provider does.",
  invalid_signature: "Check that the sender signs the raw body with one of the source's secrets.",
  timestamp_out_of_tolerance: "Check both clocks; a replayed request is refused this way too.",
  missing_timestamp: "Send the signed timestamp header the provider defines.",
  unauthorized: "Send credentials that match one of the source's secrets.",
  unsupported: "Fix the source's settings (secrets, provider options) through the API.",
};

/**
 * Verify → persist → answer. Handshakes are answered first (the providers layer verifies the
 * signed ones), anything unverified is refused with 401 and counted, and a verified request is
 * answered 2xx only once its row is committed and on disk (group commit: requests of one
 * event-loop turn share one transaction and one fsync).
 * Everything a client sends gets a 4xx or 2xx; only a failing store gives 503, which providers
 * retry.
 */
export class Intake {
  private readonly commit: GroupCommit<NewInboxItem, InsertOutcome>;

  constructor(
    store: InboxStore,
    private readonly failures: FailureCounter,
    private readonly clock: Clock,
    processor: IntakeLink,
  ) {
    const settle = (outcomes: InsertOutcome[]): void => {
      const claims: ClaimedItem[] = [];
      let queued = false;
      for (const outcome of outcomes) {
        if (outcome.status !== "received") continue;
        if (outcome.claimed) claims.push(outcome.claimed);
        else queued = true;
      }
      processor.adopt(claims);
      if (queued) processor.noteBacklog();
    };
    this.commit = new GroupCommit(async (items) => {
      let outcomes: InsertOutcome[];
      try {
        // The processor may take new items in the insert itself (see InboxProcessor).
        outcomes = await store.insertItems(items, processor.handoff(), processor.carry());
      } catch (error) {
        // Committed, not confirmed on disk: the requests still get their 503, but what the
        // processor took is handed on as usual (a resend is then a duplicate of it), and what it
        // did not take is a backlog, as after any insert.
        if (error instanceof UnsyncedCommitError) settle(error.outcomes);
        throw error;
      }
      settle(outcomes);
      return outcomes;
    });
  }

  /** Whether an insert is written in this turn's check phase, able to carry outcomes. */
  writesThisTurn(): boolean {
    return this.commit.writesThisTurn;
  }

  async receive(source: Source, raw: RawRequest): Promise<IntakeAnswer> {
    const now = this.clock.now();
    const nowSec = Math.floor(now / 1000);
    const request = toInboundRequest({
      method: raw.method,
      url: publicUrlOf(raw),
      headers: raw.headers,
      body: raw.body,
    });
    const options = providerOptions(source.options);

    const handshake = answerHandshake(source.provider, request, source.secrets, options, nowSec);
    if (handshake) {
      if (handshake.status === 401) {
        // A signed handshake that failed verification: answered like any other failure.
        const { error, message } = parseRejection(handshake.body);
        this.failures.record(source.id, error, now);
        return jsonAnswer(401, error, `${message}. ${HINTS[error] ?? ""}`.trim());
      }
      if (handshake.status === 403) this.failures.record(source.id, "verify_token_mismatch", now);
      return handshake;
    }

    const verified = verifyInbound(source.provider, request, source.secrets, options, nowSec);
    if (!verified.ok) {
      this.failures.record(source.id, verified.code, now);
      return jsonAnswer(401, verified.code, `${verified.message}. ${HINTS[verified.code] ?? ""}`.trim());
    }

    const fields = extract(source.provider, request, source.options, options);
    const q = raw.target.indexOf("?");
    const item: NewInboxItem = {
      id: newId("in", now),
      sourceId: source.id,
      eventId: fields.eventId,
      eventType: fields.eventType,
      eventTime: fields.eventTime,
      orderingKey: fields.orderingKey,
      method: request.method,
      path: q < 0 ? raw.target : raw.target.slice(0, q),
      query: q < 0 ? "" : raw.target.slice(q + 1),
      // Already lower-cased, with repeated headers joined, and without undefined values.
      headers: request.headers as Record<string, string>,
      body: raw.body,
      contentType: request.headers["content-type"] ?? null,
      bodyKind: bodyKindOf(request.headers["content-type"]),
      receivedAt: now,
    };

    let outcome: InsertOutcome;
    try {
      outcome = await this.commit.submit(item);
    } catch (error) {
      console.error("pigeon: could not store an inbound request", error);
      const answer = jsonAnswer(503, "inbox_unavailable", "The request could not be stored; send it again.");
      answer.headers["retry-after"] = "1";
      return answer;
    }
    if (outcome.status === "rejected") {
      return jsonAnswer(404, "source_not_found", `Source '${source.id}' was deleted.`);
    }
    const headers: Record<string, string> = {
      "pigeon-inbox-item": outcome.id,
      "pigeon-inbox-status": outcome.status,
    };
    if (outcome.status === "duplicate") headers["pigeon-duplicate-of"] = outcome.duplicateOf;
    // An empty 200: Slack shows a slash command's response body to the user, and every provider
    // takes an empty 2xx as "received".
    return { status: 200, headers, body: "" };
  }
}

/** The providers layer answers a rejected handshake `{"error": code, "message": …}`. */
function parseRejection(body: string): { error: string; message: string } {
  try {
    const parsed = JSON.parse(body) as { error?: unknown; message?: unknown };
    if (typeof parsed.error === "string" && typeof parsed.message === "string")
      return { error: parsed.error, message: parsed.message };
  } catch {
    // fall through
  }
  return {
    error: "invalid_signature",
    message: "the handshake request is not signed with a configured secret",
  };
}

/**
 * The URL the sender called, as well as it can be known here: scheme from X-Forwarded-Proto (a
 * TLS-terminating proxy), host from the Host header. Twilio and Square sign this URL; behind a
 * proxy that rewrites paths, set the source's `publicUrl` instead.
 */
function publicUrlOf(raw: RawRequest): string {
  const forwarded = raw.headers["x-forwarded-proto"];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(",")[0]?.trim();
  const scheme = proto === "https" || proto === "http" ? proto : "http";
  const host = raw.headers.host ?? "localhost";
  return `${scheme}://${host}${raw.target.startsWith("/") ? raw.target : `/${raw.target}`}`;
}
