/**
 * The earliest time any delivery becomes due (Store.nextDueAt): the earliest pending row, or the
 * earliest lease end of a row being sent (an expired lease comes due again).
 *
 * Pending rows are in the due index, in time order, so their minimum is the first entry. The
 * lease index (deliveries_sending) is ordered by endpoint first, so a plain min() over it read
 * every lease: 2,500 rows and buffers for each call with four workers each sending 512 at once,
 * after every claim, about as much again as the claim's own lease count. The lease ends are
 * read instead one endpoint at a time (a skip scan: the first entry after the last endpoint seen
 * is the next endpoint's earliest lease end), so a call reads one index entry per endpoint with
 * leases, however many each has.
 */
export const NEXT_DUE_SQL = `
WITH RECURSIVE leased AS (
  (SELECT endpoint_id, next_attempt_at FROM deliveries
    WHERE status = 'sending'
    ORDER BY endpoint_id, next_attempt_at
    LIMIT 1)
  UNION ALL
  SELECT following.endpoint_id, following.next_attempt_at
    FROM leased
   CROSS JOIN LATERAL (
     SELECT d.endpoint_id, d.next_attempt_at FROM deliveries d
      WHERE d.status = 'sending' AND d.endpoint_id > leased.endpoint_id
      ORDER BY d.endpoint_id, d.next_attempt_at
      LIMIT 1
   ) following
)
SELECT LEAST((SELECT min(next_attempt_at) FROM deliveries WHERE status = 'pending'),
              (SELECT min(next_attempt_at) FROM leased)) AS at
`;
