import { startEmployeesApp } from "./app.js";

const port = Number(process.env.PORT ?? 3000);
const app = await startEmployeesApp({
  port,
  dataDir: process.env.DATA_DIR ?? ".demo/employees",
  registrationToken: process.env.REGISTRATION_TOKEN ?? "demo-registration-token",
  adminToken: process.env.ADMIN_TOKEN ?? "demo-admin-token",
});
console.log(`employees: http://127.0.0.1:${app.port}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    app.stop().then(() => process.exit(0));
  });
}
