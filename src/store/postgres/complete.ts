import type { DeliveryOutcome } from "../store.js";

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
 * Replaying a batch is harmless: a connection killed during the commit leaves the dispatcher not
 * knowing whether it happened, so it writes the batch again with its next outcomes. Attempts
 * already recorded are skipped (ON CONFLICT on their key) and a delivery's attempt count grows only
 * by the attempts this statement inserted; without that the replay failed on the attempts' primary
 * key, on every later flush too, and the worker never recorded an outcome again.
 */
const COMPLETE_SQL = `
WITH outcome AS (
  SELECT * FROM unnest($2::text[], $3::text[], $4::int[], $5::bigint[], $6::text[])
    AS o(id, status, attempted, next_attempt_at, last_error)
),
target AS MATERIALIZED (
  SELECT d.id FROM deliveries d WHERE d.id IN (SELECT id FROM outcome) ORDER BY d.id FOR NO KEY UPDATE OF d
),
attempt AS (
  INSERT INTO attempts (id, msg_id, endpoint_id, delivery_id, url, succeeded, response_status_code, response,
                        response_duration_ms, error_code, trigger_type, created_at)
  SELECT * FROM unnest($7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::boolean[], $13::int[],
                       $14::text[], $15::int[], $16::text[], $17::smallint[], $18::bigint[])
    AS a(id, msg_id, endpoint_id, delivery_id, url, succeeded, response_status_code, response,
         response_duration_ms, error_code, trigger_type, created_at)
   WHERE a.delivery_id IN (SELECT id FROM target)
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
   WHERE d.id = o.id
  RETURNING 1
),
change AS (
  SELECT * FROM unnest($19::text[], $20::boolean[], $21::boolean[], $22::text[], $23::text[])
    AS c(endpoint_id, succeeded, failed, disable_event_id, disable_reason)
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
       (SELECT count(*) FROM attempt)::int AS attempts,
       (SELECT count(*) FROM endpoint)::int AS endpoints,
       (SELECT count(*) FROM disabled_event)::int AS events
`;

interface DeliveryChange {
  status: string;
  attempted: number;
  nextAttemptAt: number;
  lastError: string | null;
}

interface EndpointChange {
  succeeded: boolean;
  failed: boolean;
  disableEventId: string | null;
  disableReason: string | null;
}

/**
 * Folds the batch the way applying it outcome by outcome would (as the SQLite store does): a
 * delivery listed twice counts both attempts and ends in its last state; an endpoint is healthy if
 * any of its attempts succeeded, failing if it only failed; the first outcome that disables an
 * endpoint names its event.
 */
export function completeQuery(outcomes: DeliveryOutcome[], now: number): { text: string; values: unknown[] } {
  const deliveries = new Map<string, DeliveryChange>();
  const endpoints = new Map<string, EndpointChange>();
  const attempts = outcomes.flatMap((o) => (o.attempt ? [o.attempt] : []));
  for (const outcome of outcomes) {
    const previous = deliveries.get(outcome.deliveryId);
    deliveries.set(outcome.deliveryId, {
      status: outcome.result === "retry" ? "pending" : outcome.result,
      attempted: (previous?.attempted ?? 0) + (outcome.attempt ? 1 : 0),
      nextAttemptAt: outcome.nextAttemptAt ?? now,
      lastError: outcome.attempt?.errorCode ?? null,
    });
    if (!outcome.attempt && !outcome.disableEndpoint) continue;
    const change = endpoints.get(outcome.endpointId) ?? {
      succeeded: false,
      failed: false,
      disableEventId: null,
      disableReason: null,
    };
    if (outcome.attempt?.succeeded) change.succeeded = true;
    else if (outcome.attempt) change.failed = true;
    if (outcome.disableEndpoint && change.disableEventId === null) {
      change.disableEventId = `op_${outcome.deliveryId.slice(4)}`;
      change.disableReason = outcome.disableEndpoint.reason;
    }
    endpoints.set(outcome.endpointId, change);
  }
  const d = [...deliveries];
  const e = [...endpoints];
  return {
    text: COMPLETE_SQL,
    values: [
      now,
      d.map(([id]) => id),
      d.map(([, c]) => c.status),
      d.map(([, c]) => c.attempted),
      d.map(([, c]) => c.nextAttemptAt),
      d.map(([, c]) => c.lastError),
      attempts.map((a) => a.id),
      attempts.map((a) => a.msgId),
      attempts.map((a) => a.endpointId),
      attempts.map((a) => a.deliveryId),
      attempts.map((a) => a.url),
      attempts.map((a) => a.succeeded),
      attempts.map((a) => a.responseStatusCode),
      attempts.map((a) => a.response),
      attempts.map((a) => a.responseDurationMs),
      attempts.map((a) => a.errorCode),
      attempts.map((a) => a.triggerType),
      attempts.map((a) => a.createdAt),
      e.map(([id]) => id),
      e.map(([, c]) => c.succeeded),
      e.map(([, c]) => c.failed),
      e.map(([, c]) => c.disableEventId),
      e.map(([, c]) => c.disableReason),
    ],
  };
}
