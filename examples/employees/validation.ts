import type { EmployeeInput } from "./employees-repo.js";

export type Checked = { ok: true; value: EmployeeInput } | { ok: false; detail: string };

const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** Every field required and checked, with a message that says what to fix. */
export function checkEmployee(body: unknown): Checked {
  if (typeof body !== "object" || body === null)
    return { ok: false, detail: "Send a JSON object with name, email, department and startDate." };
  const b = body as Record<string, unknown>;
  for (const field of ["name", "email", "department", "startDate"]) {
    if (typeof b[field] !== "string" || (b[field] as string).trim() === "") {
      return { ok: false, detail: `'${field}' is required and must be a non-empty string.` };
    }
  }
  const email = String(b.email).trim();
  if (!EMAIL.test(email))
    return { ok: false, detail: "'email' must be an email address such as ann@example.com." };
  const startDate = String(b.startDate).trim();
  if (!DATE.test(startDate) || Number.isNaN(Date.parse(startDate))) {
    return { ok: false, detail: "'startDate' must be a date such as 2026-01-31." };
  }
  return {
    ok: true,
    value: { name: String(b.name).trim(), email, department: String(b.department).trim(), startDate },
  };
}
