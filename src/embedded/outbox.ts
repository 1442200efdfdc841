import { checkPayloadSize } from "../api/routes/messages.js";
import { PublishIn } from "../api/schemas.js";
import { errors } from "../core/errors.js";
import { validateBody } from "../core/json-schema.js";
import { type PublishInput, prepareMessage } from "../delivery/publisher.js";
import type { PigeonEngine } from "../engine.js";
import type { SqliteDatabase } from "../store/sqlite/database.js";
import { SqliteStore } from "../store/sqlite/sqlite-store.js";
import type { Message } from "../store/types.js";

export interface OutboxTransaction {
  /**
   * Records a message for an application (id or uid) as part of the surrounding transaction.
   * Input the HTTP API would refuse throws its PigeonError (422 validation_error, 413
   * payload_too_large) and records nothing.
   */
  publish(appIdOrUid: string, input: PublishInput): Message;
}

/**
 * The transactional outbox for an application embedding Pigeon on its SQLite file: the
 * application's own rows and the events about them commit together or not at all, so an event
 * is never lost between "row committed" and "webhook queued", nor sent for a row rolled back.
 */
export class SqliteOutbox {
  private readonly store: SqliteStore;

  constructor(private readonly engine: PigeonEngine) {
    if (!(engine.store instanceof SqliteStore)) {
      throw new Error("The SQLite outbox needs Pigeon on SQLite (PIGEON_DATABASE_URL is a SQLite path).");
    }
    this.store = engine.store;
  }

  /** The database the application writes its own tables to, so they share transactions with Pigeon. */
  get db(): SqliteDatabase {
    return this.store.db;
  }

  /**
   * Runs `fn` in one durable transaction (BEGIN IMMEDIATE … COMMIT with fsync). `fn` must be
   * synchronous: it writes the application's rows with `db` and publishes with `tx.publish`.
   */
  transaction<T>(fn: (tx: OutboxTransaction) => T): T {
    let queued = false;
    const tx: OutboxTransaction = {
      publish: (appIdOrUid, input) => {
        // The HTTP API's rules, so what the outbox stores the API can serve (no NUL in an eventId,
        // which PostgreSQL could not look up either; names and sizes within the API's limits).
        validateBody(PublishIn, input, "input");
        checkPayloadSize(this.engine, input.payload);
        const { app, eventType, endpoints } = this.store.loadPublishContextSync(appIdOrUid, input.eventType);
        if (!app) throw errors.notFound("Application", appIdOrUid);
        const { message, deliveries } = prepareMessage(
          app,
          input,
          eventType,
          endpoints,
          this.engine.clock.now(),
        );
        this.store.createMessageSync(message, deliveries);
        if (deliveries.some((d) => d.status === "pending")) queued = true;
        return message;
      },
    };
    const result = this.db.transaction(() => fn(tx)).immediate();
    if (queued) this.engine.dispatcher.wake();
    return result;
  }
}
