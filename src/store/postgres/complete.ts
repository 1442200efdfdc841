import type { DeliveryOutcome } from "../store.js";
import type { Attempt } from "../types.js";
import { isDataException, isolateRefused } from "./isolate-refused.js";

/**
 * Records a batch of outcomes in one statement (one round trip, one implicit transaction):
 * attempts inserted, deliveries rescheduled or finished and their leases cleared, endpoints'
 * failing_since set or cleared, endpoints disabled, and one `endpoint.disabled` event per endpoint
 * that this batch disabled.
 *
 * Rows are locked in id order (deliveries, then endpoints) so two workers completing overlapping
 * batches (a lease that expired and was re-claimed) queue up instead of deadlocking. Only endpoints
 * whose state changes are locked and written (failing_since starts or ends, or it is disabled):
 * a healthy endpoint's row is not rewritten on every batch, and claims, which skip locked
 * endpoint rows, are not turned away by completions. `before` re-checks that condition on each
 * endpoint's latest committed version under its lock, so "was it already disabled?" and the
 * failSince of the event are exact even when two workers disable the same endpoint at once: the
 * second finds it disabled and emits nothing.
 *
 * A delivery that is gone (its endpoint or application was deleted while it was in flight) is
 * not in `target`: its outcome is dropped, attempt included, and the rest of the batch recorded.
 *
 * A delivery no longer under this worker's lease (`leased` false: not 'sending', or 'sending' for
 * another worker) gets its attempts recorded and counted (`requeued`), and nothing else: a resend
 * that queued it again while it was in flight set it back to 'pending', and overwriting that lost
 * the resend; a lease that ran out and went to another worker is that worker's to record. The
 * check reads the row's latest committed version: `target` waits for and locks it.
 *
 * Replaying a batch is harmless: a connection killed during the commit leaves the dispatcher not
 * knowing whether it happened, so it writes the batch again with its next outcomes. Attempts
 * already recorded are skipped (ON CONFLICT on their key) and a delivery's attempt count grows only
 * by the attempts this statement inserted; without that the replay failed on the attempts' primary
 * key, on every later flush too, and the worker never recorded an outcome again.
 */
const COMPLETE_SQL = `
WITH outcome AS (
  SELECT * FROM json_to_recordset($2::json)
    AS o(id text, status text, attempted int, next_attempt_at bigint, last_error text)
),
target AS MATERIALIZED (
  SELECT d.id, d.status = 'sending' AND ($5::text IS NULL OR d.locked_by IS NOT DISTINCT FROM $5) AS leased
    FROM deliveries d WHERE d.id IN (SELECT id FROM outcome) ORDER BY d.id FOR NO KEY UPDATE OF d
),
attempt AS (
  INSERT INTO attempts (id, msg_id, endpoint_id, delivery_id, url, succeeded, response_status_code, response,
                        response_duration_ms, error_code, trigger_type, created_at)
  SELECT a.id, a."msgId", a."endpointId", a."deliveryId", a.url, a.succeeded, a."responseStatusCode", a.response,
         a."responseDurationMs", a."errorCode", a."triggerType", a."createdAt"
    FROM json_to_recordset($3::json)
      AS a(id text, "msgId" text, "endpointId" text, "deliveryId" text, url text, succeeded boolean,
           "responseStatusCode" int, response text, "responseDurationMs" int, "errorCode" text,
           "triggerType" smallint, "createdAt" bigint)
   WHERE a."deliveryId" IN (SELECT id FROM target)
  ON CONFLICT (msg_id, id) DO NOTHING
  RETURNING delivery_id
),
inserted AS (
  SELECT delivery_id, count(*)::int AS n FROM attempt GROUP BY delivery_id
),
delivery AS (
  UPDATE deliveries d
     SET status = o.status, attempts = d.attempts + COALESCE(i.n, 0), next_attempt_at = o.next_attempt_at,
         locked_until = NULL, locked_by = NULL, last_error = o.last_error, updated_at = $1
    FROM outcome o JOIN target t ON t.id = o.id LEFT JOIN inserted i ON i.delivery_id = o.id
   WHERE d.id = o.id AND t.leased
  RETURNING 1
),
requeued AS (
  UPDATE deliveries d SET attempts = d.attempts + i.n, updated_at = $1
    FROM target t JOIN inserted i ON i.delivery_id = t.id
   WHERE d.id = t.id AND NOT t.leased
  RETURNING 1
),
change AS (
  SELECT * FROM json_to_recordset($4::json)
    AS c(endpoint_id text, succeeded boolean, failed boolean, disable_event_id text, disable_reason text)
),
before AS MATERIALIZED (
  SELECT e.id, e.app_id, e.uid, e.failing_since, e.disabled,
         c.succeeded, c.failed, c.disable_event_id, c.disable_reason
    FROM endpoints e JOIN change c ON c.endpoint_id = e.id
   WHERE (c.succeeded AND e.failing_since IS NOT NULL)
      OR (c.failed AND NOT c.succeeded AND e.failing_since IS NULL)
      OR (c.disable_event_id IS NOT NULL AND NOT e.disabled)
   ORDER BY e.id
   FOR NO KEY UPDATE OF e
),
endpoint AS (
  UPDATE endpoints e
     SET disabled = b.disabled OR b.disable_event_id IS NOT NULL,
         updated_at = CASE WHEN b.disable_event_id IS NOT NULL AND NOT b.disabled THEN $1 ELSE e.updated_at END,
         failing_since = CASE
           WHEN b.succeeded THEN NULL
           WHEN b.failed THEN COALESCE(b.failing_since, $1)
           ELSE b.failing_since
         END
    FROM before b
   WHERE e.id = b.id
  RETURNING 1
),
disabled_event AS (
  INSERT INTO operational_events (id, type, app_id, data, created_at)
  SELECT b.disable_event_id, 'endpoint.disabled', b.app_id,
         json_build_object(
           'appId', b.app_id,
           'endpointId', b.id,
           'endpointUid', b.uid,
           'failSince', to_char(timestamp '1970-01-01' + b.failing_since * interval '1 millisecond',
                                'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
           'reason', b.disable_reason,
           'trigger', CASE WHEN b.disable_reason = 'gone' THEN 'manual' ELSE 'automatic' END
         ),
         $1
    FROM before b
   WHERE b.disable_event_id IS NOT NULL AND NOT b.disabled
  ON CONFLICT (id) DO NOTHING
  RETURNING 1
)
SELECT (SELECT count(*) FROM delivery)::int AS deliveries,
       (SELECT count(*) FROM requeued)::int AS requeued,
       (SELECT count(*) FROM attempt)::int AS attempts,
       (SELECT count(*) FROM endpoint)::int AS endpoints,
       (SELECT count(*) FROM disabled_event)::int AS events
`;

/** A row of `outcome` ($2): one per delivery, the batch folded. */
interface DeliveryChange {
  id: string;
  status: string;
  attempted: number;
  next_attempt_at: number;
  last_error: string | null;
}

/** A row of `change` ($4): one per endpoint with an attempt or a disable in the batch. */
interface EndpointChange {
  endpoint_id: string;
  succeeded: boolean;
  failed: boolean;
  disable_event_id: string | null;
  disable_reason: string | null;
}

/**
 * Text PostgreSQL can store: NUL (U+0000) becomes U+FFFD, the replacement character, and so does a
 * lone surrogate, which JSON.stringify writes as an escape that PostgreSQL's JSON parser rejects.
 * One response body with a NUL byte in it failed the whole batch, and with it every later flush
 * the batch was retried in: the worker never recorded another outcome.
 */
function storableText(text: string): string {
  const wellFormed = text.isWellFormed() ? text : text.toWellFormed();
  return wellFormed.includes("\u0000") ? wellFormed.replaceAll("\u0000", "\uFFFD") : wellFormed;
}

/** The attempt with its free text (what the endpoint answered, the URL it was sent to) storable. */
function storable(attempt: Attempt): Attempt {
  const response = storableText(attempt.response);
  const url = storableText(attempt.url);
  return response === attempt.response && url === attempt.url ? attempt : { ...attempt, response, url };
}

/**
 * Folds the batch the way applying it outcome by outcome would (as the SQLite store does): a
 * delivery listed twice counts both attempts and ends in its last state; an endpoint is healthy if
 * any of its attempts succeeded, failing if it only failed; the first outcome that disables an
 * endpoint names its event.
 *
 * The three row sets go as JSON text (`json_to_recordset`), not as one array parameter per column:
 * JSON.stringify is native, where 23 arrays meant 23 inlined closures in this function (V8's
 * optimising compiler spent 150 ms on an idle machine and 550 ms in a busy worker compiling it, a
 * fifth of a worker's CPU in a four-second drain) and pg's array quoting in JavaScript per element.
 *
 * `workerId`: the recording worker (the store's locked_by); a row leased by another worker is then
 * left to that worker. Without it (bench/probes/pg-statements.ts) any lease counts as the recorder's.
 */
export function completeQuery(
  outcomes: DeliveryOutcome[],
  now: number,
  workerId?: string,
): { text: string; values: unknown[] } {
  const deliveries = new Map<string, DeliveryChange>();
  const endpoints = new Map<string, EndpointChange>();
  const attempts: Attempt[] = [];
  for (const outcome of outcomes) {
    const attempt = outcome.attempt;
    if (attempt) attempts.push(storable(attempt));
    const previous = deliveries.get(outcome.deliveryId);
    deliveries.set(outcome.deliveryId, {
      id: outcome.deliveryId,
      status: outcome.result === "retry" ? "pending" : outcome.result,
      attempted: (previous?.attempted ?? 0) + (attempt ? 1 : 0),
      next_attempt_at: outcome.nextAttemptAt ?? now,
      last_error: attempt?.errorCode ?? null,
    });
    if (!attempt && !outcome.disableEndpoint) continue;
    let change = endpoints.get(outcome.endpointId);
    if (!change) {
      change = {
        endpoint_id: outcome.endpointId,
        succeeded: false,
        failed: false,
        disable_event_id: null,
        disable_reason: null,
      };
      endpoints.set(outcome.endpointId, change);
    }
    if (attempt?.succeeded) change.succeeded = true;
    else if (attempt) change.failed = true;
    if (outcome.disableEndpoint && change.disable_event_id === null) {
      change.disable_event_id = `op_${outcome.deliveryId.slice(4)}`;
      change.disable_reason = outcome.disableEndpoint.reason;
    }
  }
  return {
    text: COMPLETE_SQL,
    values: [
      now,
      JSON.stringify([...deliveries.values()]),
      JSON.stringify(attempts),
      JSON.stringify([...endpoints.values()]),
      workerId ?? null,
    ],
  };
}

export type SetAside = "attempt" | "outcome";

/**
 * Records delivery outcomes with `record` (one statement per call), isolating what PostgreSQL
 * refuses (see isolateRefused; NUL in a response did, before storableText): a refused outcome is
 * recorded without its attempt (the delivery's state is kept, so it is not sent again, only that
 * attempt's record is lost), or, if even that is refused, left under its lease, which brings the
 * delivery back to be sent again. `setAside` hears of each.
 */
export async function recordIsolating(
  outcomes: DeliveryOutcome[],
  record: (batch: DeliveryOutcome[]) => Promise<void>,
  setAside: (outcome: DeliveryOutcome, what: SetAside, error: unknown) => void,
): Promise<void> {
  await isolateRefused(outcomes, record, async (outcome, error) => {
    if (outcome.attempt) {
      try {
        await record([{ ...outcome, attempt: undefined }]);
        setAside(outcome, "attempt", error);
        return;
      } catch (second) {
        if (!isDataException(second)) throw second;
      }
    }
    setAside(outcome, "outcome", error);
  });
}
