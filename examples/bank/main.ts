import { startBank } from "./app.js";

const port = Number(process.env.PORT ?? 3101);
const bank = await startBank({
  name: process.env.BANK_NAME ?? `bank-${port}`,
  port,
  dataDir: process.env.DATA_DIR ?? `.demo/bank-${port}`,
  employeesUrl: process.env.EMPLOYEES_URL ?? "http://127.0.0.1:3000",
  registrationToken: process.env.REGISTRATION_TOKEN ?? "demo-registration-token",
});
console.log(`bank: http://127.0.0.1:${bank.port}`);
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    bank.stop().then(() => process.exit(0));
  });
}
