import type { ClaimedDelivery, ClaimRequest } from "../store.js";
import { deliveryFromRow, endpointFromRow, messageFromRow, type Row } from "./rows.js";

/**
 * Claims due deliveries for one worker in one statement (one round trip, one implicit
 * transaction), honouring each endpoint's concurrency cap across every worker sharing the
 * database.
 *
 * 1. `full_endpoints`, `head`: the endpoints of the first `limit` due rows in time order (as the
 *    SQLite claim scans), leaving out excluded endpoints and endpoints already at their cap. The
 *    cap filter uses the statement's snapshot, which may be a little old; it only keeps a full
 *    endpoint's backlog from crowding everyone else out of the head scan.
 * 2. `locked`: those endpoint rows, `FOR NO KEY UPDATE SKIP LOCKED`, in id order. Every claim takes
 *    this lock, so claims for one endpoint never overlap; SKIP LOCKED means a claim never waits (an
 *    endpoint another worker is claiming right now is simply left to it). NO KEY UPDATE, not
 *    UPDATE, so deliveries can still be inserted for the endpoint meanwhile (FK checks take KEY
 *    SHARE).
 * 3. `room`: cap − max(what this worker says it holds, its own unexpired leases) − other workers'
 *    unexpired leases. The counts come from `pigeon_endpoint_leases`, a VOLATILE function, i.e. a
 *    fresh snapshot taken after the endpoint lock: under READ COMMITTED a plain subquery would
 *    count from the statement's start and miss a claim that committed while we waited for the
 *    lock, letting two workers overfill one endpoint (the two-store test catches that).
 * 4. `picked`: per endpoint, the `room` earliest due rows (`LIMIT` inside a LATERAL, an index range
 *    per endpoint, rather than `row_number()` over every due row, which would read an endpoint's
 *    whole backlog), locked `FOR UPDATE SKIP LOCKED`; then the earliest `limit` of those. A row
 *    another worker claimed since our snapshot fails the re-check of `next_attempt_at <= now`
 *    under its new lease and is dropped, so nothing is claimed twice.
 * 5. The lease end goes into next_attempt_at (and locked_until), as on SQLite: if this worker
 *    dies, its rows simply come due again.
 */
const CLAIM_SQL = `
WITH full_endpoints AS MATERIALIZED (
  SELECT endpoint_id FROM deliveries
   WHERE status = 'sending' AND next_attempt_at > $1
   GROUP BY endpoint_id HAVING count(*) >= $5
),
head AS MATERIALIZED (
  SELECT DISTINCT due.endpoint_id FROM (
    SELECT endpoint_id FROM deliveries
     WHERE status IN ('pending', 'sending') AND next_attempt_at <= $1
       AND endpoint_id <> ALL ($4::text[])
       AND endpoint_id NOT IN (SELECT endpoint_id FROM full_endpoints)
     ORDER BY next_attempt_at
     LIMIT $2
  ) due
),
locked AS MATERIALIZED (
  SELECT e.* FROM endpoints e
   WHERE e.id IN (SELECT endpoint_id FROM head)
   ORDER BY e.id
   FOR NO KEY UPDATE OF e SKIP LOCKED
),
room AS MATERIALIZED (
  SELECT l.id AS endpoint_id,
         $5 - GREATEST(COALESCE(($6::jsonb ->> l.id)::int, 0), leases.mine) - leases.others AS room
    FROM locked l
   CROSS JOIN LATERAL pigeon_endpoint_leases(l.id, $1, $7) leases
),
picked AS MATERIALIZED (
  SELECT p.id, p.next_attempt_at
    FROM room r
   CROSS JOIN LATERAL (
     SELECT d.id, d.next_attempt_at FROM deliveries d
      WHERE d.endpoint_id = r.endpoint_id AND d.status IN ('pending', 'sending') AND d.next_attempt_at <= $1
      ORDER BY d.next_attempt_at
      LIMIT LEAST(GREATEST(r.room, 0), $2)
      FOR UPDATE OF d SKIP LOCKED
   ) p
   ORDER BY p.next_attempt_at, p.id
   LIMIT $2
),
claimed AS (
  UPDATE deliveries d
     SET status = 'sending', next_attempt_at = $3, locked_until = $3, locked_by = $7, updated_at = $1
    FROM picked p
   WHERE d.id = p.id
  RETURNING d.*
)
SELECT row_to_json(c.*) AS delivery, row_to_json(m.*) AS message, row_to_json(l.*) AS endpoint
  FROM claimed c
  JOIN picked p ON p.id = c.id
  JOIN messages m ON m.id = c.msg_id
  JOIN locked l ON l.id = c.endpoint_id
 ORDER BY p.next_attempt_at, p.id
`;

export function claimQuery(claim: ClaimRequest, worker: string): { text: string; values: unknown[] } {
  return {
    text: CLAIM_SQL,
    values: [
      claim.now,
      claim.limit,
      claim.leaseUntil,
      claim.excludeEndpointIds,
      claim.endpointConcurrency,
      JSON.stringify(claim.heldByEndpoint),
      worker,
    ],
  };
}

export function claimedFromRow(row: Row): ClaimedDelivery {
  return {
    delivery: deliveryFromRow(row.delivery as Row),
    message: messageFromRow(row.message as Row),
    endpoint: endpointFromRow(row.endpoint as Row),
  };
}
