import Database from "better-sqlite3";

export interface Account {
  id: number;
  employeeId: number;
  holder: string;
  email: string;
  status: "open" | "closed";
  openedAt: string;
  closedAt: string | null;
}

/**
 * The bank's own ledger. One account per employee is enforced by the database (UNIQUE), so a
 * webhook handled twice (at-least-once delivery, a crash mid-handler) still opens one account.
 */
export class Accounts {
  private readonly db: Database.Database;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = FULL");
    this.db.exec(`CREATE TABLE IF NOT EXISTS accounts (
      id INTEGER PRIMARY KEY AUTOINCREMENT,
      employee_id INTEGER NOT NULL UNIQUE,
      holder TEXT NOT NULL,
      email TEXT NOT NULL,
      status TEXT NOT NULL,
      opened_at TEXT NOT NULL,
      closed_at TEXT
    )`);
  }

  /** Opens the employee's account unless one exists; returns whether this call opened it. */
  open(employeeId: number, holder: string, email: string): boolean {
    return (
      this.db
        .prepare(
          `INSERT INTO accounts (employee_id, holder, email, status, opened_at) VALUES (?, ?, ?, 'open', ?)
             ON CONFLICT (employee_id) DO NOTHING`,
        )
        .run(employeeId, holder, email, new Date().toISOString()).changes === 1
    );
  }

  rename(employeeId: number, holder: string, email: string): void {
    this.db
      .prepare("UPDATE accounts SET holder = ?, email = ? WHERE employee_id = ?")
      .run(holder, email, employeeId);
  }

  close(employeeId: number): void {
    this.db
      .prepare(
        "UPDATE accounts SET status = 'closed', closed_at = ? WHERE employee_id = ? AND status = 'open'",
      )
      .run(new Date().toISOString(), employeeId);
  }

  list(): Account[] {
    return (this.db.prepare("SELECT * FROM accounts ORDER BY id").all() as Record<string, unknown>[]).map(
      (r) => ({
        id: Number(r.id),
        employeeId: Number(r.employee_id),
        holder: String(r.holder),
        email: String(r.email),
        status: r.status === "closed" ? "closed" : "open",
        openedAt: String(r.opened_at),
        closedAt: r.closed_at === null ? null : String(r.closed_at),
      }),
    );
  }

  closeDb(): void {
    this.db.close();
  }
}
