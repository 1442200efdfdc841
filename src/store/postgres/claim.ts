import type { ClaimedDelivery, ClaimRequest } from "../store.js";
import type { Endpoint, Message } from "../types.js";
import { deliveryFromRow, endpointFromRow, messageFromRow, type Row } from "./rows.js";

/**
 * Claims due deliveries for one worker in one statement (one round trip, one implicit
 * transaction), honouring each endpoint's concurrency cap across every worker sharing the
 * database.
 *
 * 1. `full_endpoints`, `head`: the endpoints among the first `limit` due rows in time order (the
 *    rows the SQLite claim scans), and how many of those rows each has; excluded endpoints (the
 *    dispatcher excludes those at its hold limit) and endpoints where other workers' leases and
 *    this worker's holding fill the cap are left out. That cap filter reads the statement's snapshot,
 *    which may be a little old: it only keeps a full endpoint's backlog from crowding everyone
 *    else out of the head scan (a second worker would otherwise see nothing but it).
 * 1b. `wanted`: the head's endpoints this worker may take, so that live workers split the endpoints
 *    with work between them. Why: a worker alone on an endpoint holds up to its hold limit there,
 *    which fills the cap, so whichever worker claimed first kept every endpoint and a second
 *    worker found no room anywhere (measured: with two workers, one took all 20,000 deliveries
 *    while the other sat idle). A worker is live while its last claim (`beat`, a row in
 *    worker_heartbeats) is younger than the peer timeout; its `share` is the busy endpoints (in
 *    the head, leased by others, or held here) divided by the live workers, rounded up.
 *    - Endpoints it holds (`mine`, from `heldByEndpoint`) stay its own, the first `share` of them
 *      by id; the rest it lets run dry, but only while a live peer holds fewer than `share`
 *      endpoints (`starving`): with nobody short of work, keeping them wastes nothing.
 *    - It takes new endpoints (`newcomers`) only up to its share: first those nobody else holds a
 *      lease on, among them first those it wins by rendezvous hashing (md5 of endpoint and worker,
 *      highest among the live workers), so two workers claiming at once mostly want different
 *      endpoints rather than the same ones (SKIP LOCKED would leave the later one with nothing).
 *    With one live worker the share is every busy endpoint, as before. None of this affects the
 *    cap: `room` still enforces it, whatever any worker believes about the others.
 * 2. `locked`: those endpoint rows, `FOR NO KEY UPDATE SKIP LOCKED`, in id order. Every claim takes
 *    this lock, so claims for one endpoint never overlap; SKIP LOCKED means a claim never waits (an
 *    endpoint another worker is claiming right now is left to it). NO KEY UPDATE, not UPDATE, so
 *    deliveries can still be inserted for the endpoint meanwhile (FK checks take KEY SHARE).
 * 3. `room`: no more than the endpoint's rows in the head, scaled by `head_share` so that the wanted
 *    endpoints' rows together come to `limit`, and
 *    - why scaled: with N live workers splitting the endpoints, a worker's own endpoints hold about
 *      one in N of the head's rows, so a claim bounded by the head took about limit ÷ N rows
 *      however many its endpoints had due. With 100 endpoints answering after 100 ms and four
 *      workers, each claim took ~250 of 1,024, a worker's sends all finished within a few ms of
 *      each other and it sat with nothing in flight while its next claim ran (measured: claims
 *      with 0 in flight and 0 queued, ~9,500 deliveries/s where 512 in flight per worker allow
 *      20,000). Scaled, a worker's claim keeps its share of the head's proportions (the earliest
 *      rows of each of its endpoints, through the per-endpoint LATERAL below) and its sends stay
 *      at its concurrency (512 in flight nearly throughout; on two cores that drain then became
 *      CPU-bound at about the same rate, while two workers gained 2–6 %). A lone worker's wanted
 *      rows are the whole head: the scale is 1.
 *    - while another worker holds an unexpired lease on the endpoint (locked_by names the worker):
 *      cap − what this worker holds (`heldByEndpoint`, as on SQLite) − the other workers' leases;
 *    - while none does: the hold limit − what this worker holds. The worker then may hold more than
 *      the cap (it sends only cap at once and queues the rest), so claims come in batches. Not for
 *      an endpoint with a rate limit (cap − held then): its queued rows would wait for their send
 *      slots, and one still waiting when its lease runs out would be claimed and sent by another
 *      worker too, beside the cap this worker is already sending.
 *    Together these keep an endpoint's total in flight within the cap: a worker takes more than
 *    the cap only while it is alone, and while its leases fill the cap, anyone else's room is
 *    ≤ 0. Each worker sends at most min(held, cap), and its leases are at least what it sends.
 *    This worker's own leases are not counted again: its dispatcher already counts them in
 *    `heldByEndpoint`, and more precisely (a row it has finished sending but not yet recorded is
 *    still 'sending' in the table; counting it would leave the claim that follows each completion
 *    empty and stall the endpoint until the next poll). A dead worker's leases belong to no live
 *    worker, so they count as "other" until they expire.
 *    The count comes from `pigeon_other_leases`, a VOLATILE function, so it is read with a fresh
 *    snapshot taken after the endpoint lock. Under READ COMMITTED a plain subquery would count
 *    from the statement's start and miss a claim that committed between then and our lock,
 *    letting two workers overfill one endpoint (the two-worker test catches that in most runs).
 * 4. `picked`: per endpoint, its `room` earliest due rows (`LIMIT` inside a LATERAL: one short
 *    index range per endpoint), locked `FOR NO KEY UPDATE SKIP LOCKED`, so at most `limit` rows are
 *    locked: expired leases first (`expired`, through the lease index), then pending rows (`fresh`,
 *    through the due index) for the room left. Due rows are found in two places because the due
 *    indexes hold only pending rows (migration 4): a claimed row then goes into three indexes, not
 *    five. `head` merges the earliest of both kinds the same way. Each branch spells its status
 *    out: only a literal status lets the planner use the partial index that holds it. A row
 *    another worker claimed since our snapshot fails the re-check of `next_attempt_at <= now` (and
 *    of its status) under its new lease and is passed over, so nothing is claimed twice and the
 *    scan moves on to that endpoint's next due row.
 * 5. `claimed` finds the picked rows through the primary key (`= ANY (ARRAY(…))`): joined with
 *    `picked`, whose size the planner guesses as `limit`, it hashed the whole table instead.
 * 6. The result is one row of three JSON arrays: the claimed deliveries (in due order), their
 *    messages and their endpoints, each message and endpoint once. A claim's rows share a few
 *    endpoints and, with fan-out, messages, and encoding, sending and parsing the same JSON again
 *    per delivery was a good part of the claim's cost. Why arrays, not a row per delivery with
 *    its message and endpoint on the first row that needs them (as before): marking those first
 *    rows took two window functions, each sorting the claim, and pg parsed three JSON values per
 *    row; as arrays, a 300-row claim takes 5–10 % less of PostgreSQL's CPU
 *    (bench/probes/pg-statements.ts, median of five: 14.1 against 14.9 ms). All three read
 *    `handed`, the picked rows the UPDATE claimed. claimedFromRows joins them up again.
 * 7. The row also says how many other workers are live (\`peers\`), for the dispatcher's pacing.
 * 8. The lease end goes into next_attempt_at (and locked_until), as on SQLite: if this worker
 *    dies, its rows simply come due again. As on SQLite, the delivery handed back is the row as
 *    it was before the claim, with status 'sending'.
 */
const CLAIM_SQL = `
WITH other_leases AS MATERIALIZED (
  SELECT locked_by, endpoint_id, count(*) AS n FROM deliveries
   WHERE status = 'sending' AND next_attempt_at > $1 AND locked_by IS DISTINCT FROM $7
   GROUP BY locked_by, endpoint_id
),
others AS MATERIALIZED (
  SELECT endpoint_id, sum(n) AS n FROM other_leases GROUP BY endpoint_id
),
full_endpoints AS MATERIALIZED (
  SELECT endpoint_id FROM others WHERE n + COALESCE(($6::jsonb ->> endpoint_id)::int, 0) >= $5
),
head AS MATERIALIZED (
  SELECT due.endpoint_id, count(*) AS n FROM (
    SELECT endpoint_id FROM (
      (SELECT endpoint_id, next_attempt_at FROM deliveries
        WHERE status = 'pending' AND next_attempt_at <= $1
          AND endpoint_id <> ALL ($4::text[])
          AND endpoint_id NOT IN (SELECT endpoint_id FROM full_endpoints)
        ORDER BY next_attempt_at
        LIMIT $2)
      UNION ALL
      (SELECT endpoint_id, next_attempt_at FROM deliveries
        WHERE status = 'sending' AND next_attempt_at <= $1
          AND endpoint_id <> ALL ($4::text[])
          AND endpoint_id NOT IN (SELECT endpoint_id FROM full_endpoints)
        ORDER BY next_attempt_at
        LIMIT $2)
    ) both_kinds
    ORDER BY next_attempt_at
    LIMIT $2
  ) due
  GROUP BY due.endpoint_id
),
beat AS (
  INSERT INTO worker_heartbeats (id, seen_at) VALUES ($7, $1)
  ON CONFLICT (id) DO UPDATE SET seen_at = EXCLUDED.seen_at
),
forgotten AS (
  DELETE FROM worker_heartbeats WHERE seen_at < $1 - 86400000
),
mine AS MATERIALIZED (
  SELECT key AS endpoint_id, row_number() OVER (ORDER BY key) AS rank
    FROM jsonb_each_text($6::jsonb) WHERE value::int > 0
),
peers AS MATERIALIZED (
  SELECT id FROM worker_heartbeats WHERE seen_at > $1 - $9 AND id <> $7
),
share AS MATERIALIZED (
  SELECT CEIL(count(*)::numeric / (1 + (SELECT count(*) FROM peers)))::int AS n
    FROM (SELECT endpoint_id FROM head UNION SELECT endpoint_id FROM others UNION SELECT endpoint_id FROM mine) busy
),
starving AS MATERIALIZED (
  SELECT EXISTS (
    SELECT 1 FROM peers p
     WHERE (SELECT count(*) FROM other_leases o WHERE o.locked_by = p.id) < (SELECT n FROM share)
  ) AS yes
),
newcomers AS MATERIALIZED (
  SELECT h.endpoint_id,
         row_number() OVER (
           ORDER BY h.endpoint_id IN (SELECT endpoint_id FROM others),
                    EXISTS (SELECT 1 FROM peers p WHERE md5(h.endpoint_id || p.id) > md5(h.endpoint_id || $7)),
                    md5(h.endpoint_id || $7)
         ) AS rank
    FROM head h
   WHERE h.endpoint_id NOT IN (SELECT endpoint_id FROM mine)
),
wanted AS MATERIALIZED (
  SELECT h.* FROM head h JOIN mine m ON m.endpoint_id = h.endpoint_id
   WHERE m.rank <= (SELECT n FROM share) OR NOT (SELECT yes FROM starving)
  UNION ALL
  SELECT h.* FROM head h JOIN newcomers c ON c.endpoint_id = h.endpoint_id
   WHERE (SELECT count(*) FROM mine) + c.rank <= (SELECT n FROM share)
),
head_share AS MATERIALIZED (
  SELECT GREATEST(1, $2::numeric / GREATEST(1, (SELECT sum(n) FROM wanted))) AS scale
),
locked AS MATERIALIZED (
  SELECT e.* FROM endpoints e
   WHERE e.id IN (SELECT endpoint_id FROM wanted)
   ORDER BY e.id
   FOR NO KEY UPDATE OF e SKIP LOCKED
),
room AS MATERIALIZED (
  SELECT l.id AS endpoint_id,
         LEAST(CEIL(h.n * s.scale)::int, CASE WHEN o.n = 0 AND l.rate_limit IS NULL THEN $8 ELSE $5 - o.n END - COALESCE(($6::jsonb ->> l.id)::int, 0)) AS room
    FROM locked l
    JOIN wanted h ON h.endpoint_id = l.id
   CROSS JOIN head_share s
   CROSS JOIN LATERAL (SELECT pigeon_other_leases(l.id, $1, $7) AS n) o
),
expired AS MATERIALIZED (
  SELECT p.*
    FROM room r
   CROSS JOIN LATERAL (
     SELECT d.* FROM deliveries d
      WHERE d.endpoint_id = r.endpoint_id AND d.status = 'sending' AND d.next_attempt_at <= $1
      ORDER BY d.next_attempt_at
      LIMIT GREATEST(r.room, 0)
      FOR NO KEY UPDATE OF d SKIP LOCKED
   ) p
),
fresh AS MATERIALIZED (
  SELECT p.*
    FROM room r
    LEFT JOIN (SELECT endpoint_id, count(*) AS n FROM expired GROUP BY endpoint_id) x
      ON x.endpoint_id = r.endpoint_id
   CROSS JOIN LATERAL (
     SELECT d.* FROM deliveries d
      WHERE d.endpoint_id = r.endpoint_id AND d.status = 'pending' AND d.next_attempt_at <= $1
      ORDER BY d.next_attempt_at
      LIMIT GREATEST(r.room - COALESCE(x.n, 0), 0)
      FOR NO KEY UPDATE OF d SKIP LOCKED
   ) p
),
picked AS MATERIALIZED (
  SELECT * FROM (SELECT * FROM expired UNION ALL SELECT * FROM fresh) both_kinds
   ORDER BY next_attempt_at, id
   LIMIT $2
),
claimed AS (
  UPDATE deliveries d
     SET status = 'sending', next_attempt_at = $3, locked_until = $3, locked_by = $7, updated_at = $1
   WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
  RETURNING d.id
),
handed AS MATERIALIZED (
  SELECT p.* FROM picked p WHERE p.id IN (SELECT id FROM claimed)
)
SELECT (SELECT json_agg(row_to_json(h.*) ORDER BY h.next_attempt_at, h.id) FROM handed h) AS deliveries,
       (SELECT json_agg(row_to_json(m.*)) FROM messages m
         WHERE m.id IN (SELECT msg_id FROM handed)) AS messages,
       (SELECT json_agg(row_to_json(l.*)) FROM locked l
         WHERE l.id IN (SELECT endpoint_id FROM handed)) AS endpoints,
       (SELECT count(*) FROM peers)::int AS peers
`;

/** How long a worker counts as live after its last claim when the claim does not say. */
export const DEFAULT_PEER_TIMEOUT_MS = 10_000;

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
      claim.endpointHoldLimit ?? claim.endpointConcurrency,
      claim.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS,
    ],
  };
}

/** The claim's one row: its deliveries, their messages and endpoints (null when it claimed nothing). */
interface ClaimRow {
  deliveries: Row[] | null;
  messages: Row[] | null;
  endpoints: Row[] | null;
  peers: number;
}

/**
 * The claim's one row read back: its deliveries, each with its message and endpoint (sent once each,
 * see CLAIM_SQL), and how many other live workers it saw (undefined when it claimed nothing, and so
 * said nothing).
 */
export function claimFromRows(rows: Row[]): { claimed: ClaimedDelivery[]; livePeers: number | undefined } {
  const row = rows[0] as ClaimRow | undefined;
  if (!row?.deliveries) return { claimed: [], livePeers: undefined };
  const messages = new Map<string, Message>();
  for (const m of row.messages ?? []) messages.set(String(m.id), messageFromRow(m));
  const endpoints = new Map<string, Endpoint>();
  for (const e of row.endpoints ?? []) endpoints.set(String(e.id), endpointFromRow(e));
  const claimed = row.deliveries.map((delivery): ClaimedDelivery => {
    const message = messages.get(String(delivery.msg_id));
    const endpoint = endpoints.get(String(delivery.endpoint_id));
    if (!message || !endpoint)
      throw new Error(`claimed delivery ${String(delivery.id)} came without its message or endpoint`);
    return {
      delivery: { ...deliveryFromRow(delivery), status: "sending" },
      wasLeased: delivery.status === "sending",
      message,
      endpoint,
    };
  });
  return { claimed, livePeers: Number(row.peers) };
}
