import { describe, expect, test } from "bun:test";
import pino from "pino";
import { openDatabase } from "../../src/store/db.ts";
import { migrate } from "../../src/store/migrate.ts";
import { LocalMatrixBackend } from "../../src/matrix/local.ts";
import { databaseUrl, freshPostgresDatabase } from "../helpers/services.ts";

// Found by the send benchmark (bench/SUMMARY.md): ensureUser ran an INSERT on every send.
describe("local Matrix backend: ensureUser", () => {
  test("a user is inserted once; later calls for the same user run no statement", async () => {
    const fresh = databaseUrl ? await freshPostgresDatabase("daarion_known_users") : null;
    const log = pino({ level: "silent" });
    const db = await openDatabase({ url: fresh?.url, dataDir: ":memory:", poolMax: 2 }, log);
    try {
      await migrate(db.sql, log);
      let statements = 0;
      const counted = new Proxy(db.sql, {
        apply(target, self, args) {
          statements++;
          return Reflect.apply(target as never, self, args);
        },
      });
      const backend = new LocalMatrixBackend(counted, "daarion.city");
      await backend.ensureUser("@alice:daarion.city", "Alice");
      await backend.ensureUser("@alice:daarion.city");
      await backend.ensureUser("@alice:daarion.city", "Other name");
      await backend.ensureUser("@bob:daarion.city");
      expect(statements).toBe(2);
      const rows = await db.sql`select user_id, display_name from local_matrix_users order by user_id`;
      expect(rows.map((r) => ({ ...r }))).toEqual([
        { user_id: "@alice:daarion.city", display_name: "Alice" },
        { user_id: "@bob:daarion.city", display_name: null },
      ]);
      await backend.close();
    } finally {
      await db.close();
      await fresh?.drop();
    }
  }, 30_000);
});
