import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { PigeonError } from "../../src/core/errors.js";
import type { PublishInput } from "../../src/delivery/publisher.js";
import { SqliteOutbox } from "../../src/embedded/outbox.js";
import { startPigeon, type TestPigeon } from "../helpers/pigeon.js";
import { Sink } from "../helpers/sink.js";

describe("transactional outbox (SQLite)", () => {
  let pigeon: TestPigeon;
  let sink: Sink;
  let outbox: SqliteOutbox;

  beforeEach(async () => {
    pigeon = await startPigeon();
    sink = await Sink.start();
    outbox = new SqliteOutbox(pigeon.engine);
    outbox.db.exec("CREATE TABLE employees (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE)");
    const app = await pigeon.svix.application.create({ name: "Employees", uid: "employees" });
    await pigeon.svix.endpoint.create(app.id, { url: sink.url() });
  });
  afterEach(async () => {
    await pigeon.close();
    await sink.close();
  });

  it("commits the row and its event together, and the event is delivered", async () => {
    const msg = outbox.transaction((tx) => {
      const { lastInsertRowid } = outbox.db.prepare("INSERT INTO employees (name) VALUES (?)").run("Ann");
      return tx.publish("employees", {
        eventType: "employee.created",
        payload: { id: Number(lastInsertRowid), name: "Ann" },
      });
    });
    await sink.waitFor(1);
    expect(sink.received[0]!.headers["webhook-id"]).toBe(msg.id);
    expect(JSON.parse(sink.received[0]!.body.toString())).toEqual({ id: 1, name: "Ann" });
  });

  it("rolls back the event when the application's write fails, and the row when publishing fails", async () => {
    outbox.transaction((tx) => {
      outbox.db.prepare("INSERT INTO employees (name) VALUES (?)").run("Bo");
      tx.publish("employees", { eventType: "employee.created", payload: { name: "Bo" } });
    });
    // A duplicate name fails after the event was published inside the transaction: both vanish.
    expect(() =>
      outbox.transaction((tx) => {
        tx.publish("employees", { eventType: "employee.created", payload: { name: "Bo again" } });
        outbox.db.prepare("INSERT INTO employees (name) VALUES (?)").run("Bo");
      }),
    ).toThrow(/UNIQUE/);
    // Publishing to an unknown application fails: the employee row is not kept either.
    expect(() =>
      outbox.transaction((tx) => {
        outbox.db.prepare("INSERT INTO employees (name) VALUES (?)").run("Cy");
        tx.publish("nobody", { eventType: "employee.created", payload: { name: "Cy" } });
      }),
    ).toThrow(/not found/);
    await sink.waitFor(1);
    await new Promise((r) => setTimeout(r, 300));
    const names = outbox.db.prepare("SELECT name FROM employees ORDER BY id").all() as { name: string }[];
    expect(names.map((n) => n.name)).toEqual(["Bo"]);
    const messages = await pigeon.svix.message.list("employees");
    expect(messages.data.map((m) => m.payload)).toEqual([{ name: "Bo" }]);
    expect(sink.received).toHaveLength(1);
  });

  it("refuses what the HTTP API refuses, with its error, and keeps neither the event nor the row", async () => {
    const refusal = (input: PublishInput): PigeonError => {
      try {
        outbox.transaction((tx) => {
          outbox.db.prepare("INSERT INTO employees (name) VALUES (?)").run("Di");
          tx.publish("employees", input);
        });
      } catch (error) {
        return error as PigeonError;
      }
      throw new Error("the outbox accepted it");
    };
    const nul = refusal({ eventType: "employee.created", eventId: "evt\u0000-1", payload: {} });
    expect(nul).toBeInstanceOf(PigeonError);
    expect([nul.status, nul.code]).toEqual([422, "validation_error"]);
    expect(nul.message).toContain("input.eventId: must not contain the NUL character");
    const badType = refusal({ eventType: "employee created!", payload: {} });
    expect(badType.message).toContain("input.eventType");
    const unknownField = refusal({ eventType: "employee.created", payload: {}, deliverAt: "x" } as never);
    expect(unknownField.message).toContain("input.deliverAt: unknown field");
    const tooBig = refusal({ eventType: "employee.created", payload: { blob: "x".repeat(2 * 1024 * 1024) } });
    expect([tooBig.status, tooBig.code]).toEqual([413, "payload_too_large"]);
    expect(tooBig.message).toMatch(
      /^The message payload \(as JSON; PIGEON_MAX_PAYLOAD_BYTES\) is larger than the limit of \d+ bytes\.$/,
    );

    expect(outbox.db.prepare("SELECT count(*) AS n FROM employees").get()).toEqual({ n: 0 });
    expect((await pigeon.svix.message.list("employees")).data).toEqual([]);
  });
});
