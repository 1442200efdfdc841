import { expect, it } from "vitest";
import { describeBackends, openTestStore } from "../helpers/backends.js";
import { application } from "./fixtures.js";

// Migrations: a database written by a newer Pigeon is refused, not guessed at; reopening a
// current one is a no-op that keeps the data.

describeBackends("store: schema migrations", (backend) => {
  it("reopens a migrated database without losing data", async () => {
    const t = await openTestStore(backend);
    try {
      const app = application({ uid: "kept" });
      await t.store.createApplication(app);
      const again = await t.openAnother();
      expect(await again.getApplication("kept")).toEqual(app);
    } finally {
      await t.cleanup();
    }
  });

  it("refuses to open a schema newer than this Pigeon knows", async () => {
    const t = await openTestStore(backend);
    try {
      await t.setSchemaVersion(999);
      const error = await t.openAnother().then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error).toBeInstanceOf(Error);
      expect(error?.message).toMatch(
        /^The database schema is version 999, but this Pigeon knows only up to \d+\. It was written by a newer Pigeon: upgrade Pigeon rather than run an older one against it\.$/,
      );
    } finally {
      await t.cleanup();
    }
  });
});
