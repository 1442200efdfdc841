import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Crash and load tests spawn servers; two cores cannot run many files at once usefully.
    maxWorkers: 2,
    pool: "forks",
  },
});
