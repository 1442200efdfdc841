import type { SqliteOutbox } from "../../src/embedded/outbox.js";

export interface Employee {
  id: number;
  name: string;
  email: string;
  department: string;
  startDate: string;
  createdAt: string;
  updatedAt: string;
}

export type EmployeeInput = Pick<Employee, "name" | "email" | "department" | "startDate">;

export const PUBLISHER_APP = "employees";

/**
 * The employees table lives in the same SQLite file as Pigeon, and every write publishes its
 * event inside the same transaction (the outbox): no employee without its webhook, and no webhook
 * for an employee that was rolled back.
 */
export class EmployeesRepo {
  constructor(private readonly outbox: SqliteOutbox) {
    outbox.db.exec(`CREATE TABLE IF NOT EXISTS employees (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      name TEXT NOT NULL,
      email TEXT NOT NULL UNIQUE,
      department TEXT NOT NULL,
      start_date TEXT NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`);
  }

  list(): Employee[] {
    return (
      this.outbox.db.prepare("SELECT * FROM employees ORDER BY id").all() as Record<string, unknown>[]
    ).map(toEmployee);
  }

  get(id: number): Employee | undefined {
    const row = this.outbox.db.prepare("SELECT * FROM employees WHERE id = ?").get(id) as
      | Record<string, unknown>
      | undefined;
    return row ? toEmployee(row) : undefined;
  }

  create(input: EmployeeInput): Employee {
    return this.outbox.transaction((tx) => {
      const now = new Date().toISOString();
      const { lastInsertRowid } = this.outbox.db
        .prepare(
          "INSERT INTO employees (name, email, department, start_date, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .run(input.name, input.email, input.department, input.startDate, now, now);
      const employee = this.get(Number(lastInsertRowid))!;
      tx.publish(PUBLISHER_APP, {
        eventType: "employee.created",
        eventId: `employee.created.${employee.id}`,
        payload: eventPayload("employee.created", employee),
      });
      return employee;
    });
  }

  update(id: number, input: EmployeeInput): Employee | undefined {
    return this.outbox.transaction((tx) => {
      const changed = this.outbox.db
        .prepare(
          "UPDATE employees SET name = ?, email = ?, department = ?, start_date = ?, updated_at = ? WHERE id = ?",
        )
        .run(
          input.name,
          input.email,
          input.department,
          input.startDate,
          new Date().toISOString(),
          id,
        ).changes;
      if (changed === 0) return undefined;
      const employee = this.get(id)!;
      tx.publish(PUBLISHER_APP, {
        eventType: "employee.updated",
        payload: eventPayload("employee.updated", employee),
      });
      return employee;
    });
  }

  delete(id: number): boolean {
    return this.outbox.transaction((tx) => {
      const employee = this.get(id);
      if (!employee) return false;
      this.outbox.db.prepare("DELETE FROM employees WHERE id = ?").run(id);
      tx.publish(PUBLISHER_APP, {
        eventType: "employee.deleted",
        eventId: `employee.deleted.${id}`,
        payload: eventPayload("employee.deleted", employee),
      });
      return true;
    });
  }
}

function toEmployee(row: Record<string, unknown>): Employee {
  return {
    id: Number(row.id),
    name: String(row.name),
    email: String(row.email),
    department: String(row.department),
    startDate: String(row.start_date),
    createdAt: String(row.created_at),
    updatedAt: String(row.updated_at),
  };
}

/**
 * The webhook payload in the Standard Webhooks envelope: `type`, `timestamp` (when this event
 * happened, so receivers can order events per employee) and `data`.
 */
function eventPayload(type: string, employee: Employee): Record<string, unknown> {
  return { type, timestamp: new Date().toISOString(), data: employee };
}
