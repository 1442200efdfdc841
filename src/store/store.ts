import type {
  Application,
  Attempt,
  Delivery,
  Endpoint,
  EventType,
  Message,
  OperationalEvent,
  Page,
  PageQuery,
} from "./types.js";

/**
 * The one interface both backends implement. Promise-returning so a networked database fits;
 * nothing here knows HTTP, and the delivery engine does not know which backend it runs on.
 */
export interface Store {
  readonly kind: "sqlite" | "postgres";
  close(): Promise<void>;
  /**
   * Calls `listener` when another process may have queued work (PostgreSQL LISTEN/NOTIFY).
   * A backend owned by one process never calls it: the publisher wakes the dispatcher directly.
   * Returns an unsubscribe function.
   */
  onNewWork(listener: () => void): () => void;

  // Applications. `idOrUid` accepts the `app_` id or the caller's uid, as Svix does.
  createApplication(app: Application): Promise<Application>;
  getApplication(idOrUid: string): Promise<Application | undefined>;
  listApplications(page: PageQuery): Promise<Page<Application>>;
  updateApplication(app: Application): Promise<Application>;
  deleteApplication(id: string): Promise<void>;

  // Event types (global, as in Svix).
  createEventType(eventType: EventType): Promise<EventType>;
  getEventType(name: string): Promise<EventType | undefined>;
  listEventTypes(page: PageQuery, includeArchived: boolean): Promise<Page<EventType>>;
  updateEventType(eventType: EventType): Promise<EventType>;
  deleteEventType(name: string, expunge: boolean): Promise<void>;

  // Endpoints.
  createEndpoint(endpoint: Endpoint): Promise<Endpoint>;
  getEndpoint(appId: string, idOrUid: string): Promise<Endpoint | undefined>;
  listEndpoints(appId: string, page: PageQuery): Promise<Page<Endpoint>>;
  /** Every enabled endpoint of an application; the fan-out reads this on each message. */
  listActiveEndpoints(appId: string): Promise<Endpoint[]>;
  /**
   * Writes the endpoint's handshake state (status, challenge, verifiedAt, handshake attempts and
   * time) only with `handshakeState` or `holdQueued`: an edit's copy of it may be older than a
   * handshake that finished meanwhile (see ENDPOINT_HANDSHAKE_COLUMNS).
   * `holdQueued`: the endpoint goes back to 'pending' (its URL changed under a required
   * handshake), so its queued and in-flight deliveries become 'held' in the same transaction.
   */
  updateEndpoint(
    endpoint: Endpoint,
    options?: { holdQueued?: boolean; handshakeState?: boolean },
  ): Promise<Endpoint>;
  deleteEndpoint(appId: string, id: string): Promise<void>;
  /**
   * Records that `url` answered the handshake: if the endpoint still has that URL, marks it
   * verified (active) and releases its held deliveries in the same transaction, returning how many.
   * Returns undefined, changing nothing, when the endpoint is gone or its URL changed meanwhile
   * (the new URL has a handshake of its own to pass).
   */
  markEndpointVerified(endpointId: string, url: string, now: number): Promise<number | undefined>;
  /** Endpoints still pending their handshake whose next try is due by `dueBy`. */
  listEndpointsDueForHandshake(dueBy: number, limit: number): Promise<Endpoint[]>;
  /**
   * Records a failed handshake try and when to try again (null: stop trying until re-verify).
   * With `url`, only if the endpoint still has that URL: a try of an old URL must not push back
   * or stop the handshake of the new one.
   */
  scheduleHandshake(endpointId: string, attempts: number, nextAt: number | null, url?: string): Promise<void>;

  /**
   * What publishing a message reads, in one round trip where the backend is networked: the
   * application (id or uid), the event type (by name; undefined when not registered) and the
   * application's enabled endpoints ([] when the application does not exist).
   */
  loadPublishContext(appIdOrUid: string, eventType: string): Promise<PublishContext>;

  // Messages.
  /**
   * A message and its fan-out, written in one transaction. A delivery given as 'pending' or
   * 'held' is written 'held' if its endpoint is pending when written, else 'pending': the caller's
   * choice came from an earlier read, which a handshake or a URL change may have overtaken.
   */
  createMessage(message: Message, deliveries: Delivery[]): Promise<Message>;
  getMessage(appId: string, idOrEventId: string): Promise<Message | undefined>;
  listMessages(appId: string, query: MessageQuery): Promise<Page<Message>>;
  listMessagesForEndpoint(appId: string, endpointId: string, query: MessageQuery): Promise<Page<Message>>;

  // Idempotency: a response remembered per (application scope, key).
  getIdempotentResponse(scope: string, key: string, notBefore: number): Promise<StoredResponse | undefined>;
  putIdempotentResponse(scope: string, key: string, response: StoredResponse, now: number): Promise<void>;

  // Deliveries: the dispatcher's hot path.
  claimDueDeliveries(claim: ClaimRequest): Promise<ClaimedDelivery[]>;
  /**
   * How many other workers were claiming from this store as of this worker's last claim that took
   * rows. Absent on a backend one process owns.
   */
  livePeerCount?(): number;
  completeDeliveries(outcomes: DeliveryOutcome[], now: number): Promise<void>;
  /** Releases leases early (graceful shutdown) so another worker need not wait them out. */
  releaseDeliveries(ids: string[], now: number): Promise<void>;
  getDelivery(msgId: string, endpointId: string): Promise<Delivery | undefined>;
  /**
   * Queues a fresh attempt of an existing (message, endpoint) pair, creating the row if needed;
   * 'held' instead if the endpoint is pending (as for recoverFailedDeliveries).
   */
  requeueDelivery(delivery: Delivery, now: number): Promise<void>;
  /**
   * Re-queues every failed delivery of the endpoint created since `since`; returns how many.
   * They are 'held', not due, while the endpoint is pending its handshake.
   */
  recoverFailedDeliveries(endpointId: string, since: number, now: number): Promise<number>;
  countDeliveriesByStatus(endpointId: string, since?: number): Promise<Record<Delivery["status"], number>>;
  /**
   * Reserves the next send slot of a rate-limited endpoint and returns when it may start (ms).
   * Slots are spaced 1000/rate ms apart, so no one-second window ever holds more than `rate`
   * sends. A shared backend keeps this state in the database so the limit holds across workers.
   */
  reserveSendSlot(endpointId: string, ratePerSecond: number, now: number): Promise<number>;
  /** The earliest time any delivery becomes due, so an idle dispatcher knows when to wake. */
  nextDueAt(): Promise<number | undefined>;

  // Attempts.
  listAttemptsByMessage(appId: string, msgId: string, query: AttemptQuery): Promise<Page<Attempt>>;
  listAttemptsByEndpoint(appId: string, endpointId: string, query: AttemptQuery): Promise<Page<Attempt>>;
  getAttempt(msgId: string, attemptId: string): Promise<Attempt | undefined>;

  // Operational events (endpoint.disabled, …).
  recordOperationalEvent(event: OperationalEvent): Promise<void>;
  listOperationalEvents(page: PageQuery): Promise<Page<OperationalEvent>>;
}

export interface MessageQuery extends PageQuery {
  eventTypes?: string[] | undefined;
  channel?: string | undefined;
  before?: number | undefined;
  after?: number | undefined;
}

export interface AttemptQuery extends PageQuery {
  /** Svix's MessageStatus: 0 success, 1 pending, 2 fail, 3 sending. */
  status?: number | undefined;
  endpointId?: string | undefined;
  before?: number | undefined;
  after?: number | undefined;
}

export interface StoredResponse {
  status: number;
  body: string;
}

export interface PublishContext {
  app: Application | undefined;
  eventType: EventType | undefined;
  endpoints: Endpoint[];
}

export interface ClaimRequest {
  now: number;
  limit: number;
  leaseUntil: number;
  /** Endpoints at their concurrency cap or out of rate budget: claiming for them would only queue. */
  excludeEndpointIds: string[];
  /**
   * The most deliveries one endpoint may have in flight at once, across every worker (its
   * concurrency cap). A worker sends at most this many at once for an endpoint, whatever it holds.
   */
  endpointConcurrency: number;
  /**
   * The most rows this worker may hold (sending plus queued) for an endpoint that no other worker
   * holds a lease on; at least `endpointConcurrency`, which is the default. Holding more than it
   * sends lets claims come in batches. A claim never takes more for an endpoint than this minus
   * what the worker holds (`heldByEndpoint`). A shared backend also counts other workers' unexpired
   * leases: while there are any, the worker may hold only `endpointConcurrency` minus its own and
   * theirs, so an endpoint's total in flight never passes the cap (a worker holding more than the
   * cap leaves no room for anyone else, and takes more than the cap only while it is alone). A
   * shared backend grants more than the cap only to endpoints without a rate limit, whose queued
   * rows do not wait for send slots (and so do not outwait their lease).
   */
  endpointHoldLimit?: number;
  heldByEndpoint: Record<string, number>;
  /**
   * How long after its last claim another worker still counts as live, for a shared backend that
   * shares endpoints between live workers; a few of the dispatcher's poll intervals, since an idle
   * worker claims once per poll.
   */
  peerTimeoutMs?: number;
}

export interface ClaimedDelivery {
  delivery: Delivery;
  message: Message;
  endpoint: Endpoint;
  /**
   * The row was in 'sending' when claimed: its lease ran out. Otherwise it was 'pending', which
   * for a delivery this worker still holds means a resend or recover queued it again meanwhile.
   */
  wasLeased: boolean;
}

export interface DeliveryOutcome {
  deliveryId: string;
  endpointId: string;
  /** Absent when nothing was sent (the endpoint was disabled or deleted meanwhile). */
  attempt?: Attempt;
  /** succeeded, retry at nextAttemptAt, or failed for good. */
  result: "succeeded" | "retry" | "failed";
  nextAttemptAt?: number;
  /** Set when this outcome disables the endpoint (410, or failing for too long). */
  disableEndpoint?: { reason: string };
}

/**
 * The `succeeded` value of the recorded attempts with a given Svix status, or undefined for none:
 * an attempt is recorded once it has finished, so it is a success (0) or a failure (2), never
 * pending (1) or sending (3). Those filters matched failed attempts before.
 */
export function succeededForAttemptStatus(status: number): boolean | undefined {
  if (status === 0) return true;
  if (status === 2) return false;
  return undefined;
}
