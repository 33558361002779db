import { describe, expect, test } from "bun:test";
import postgres from "postgres";
import pino from "pino";
import { migrate, readMigrations } from "../../src/store/migrate.ts";
import { openDatabase, type Sql } from "../../src/store/db.ts";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";

const log = pino({ level: "silent" });

describe("migrations", () => {
  test("files are numbered, forward-only and start from the seed's schema", () => {
    const files = readMigrations();
    expect(files[0]!.name).toBe("001_messenger_schema.sql");
    expect(files.map((f) => f.version)).toEqual(files.map((_, i) => i + 1));
    // The seed's example rows name rooms that exist in no homeserver: they are not carried over.
    expect(files[0]!.sql).not.toMatch(/insert into/i);
  });

  test("embedded PGlite: applies every file once, and a second run applies nothing", async () => {
    const db = await openDatabase({ dataDir: ":memory:", poolMax: 1 }, log);
    try {
      const first = await migrate(db.sql, log);
      expect(first).toEqual(readMigrations().map((f) => f.version));
      expect(await migrate(db.sql, log)).toEqual([]);
      await expectSchema(db.sql);
    } finally {
      await db.close();
    }
  }, 30000);

  test.skipIf(serviceMissing("DATABASE_URL"))("PostgreSQL: two processes starting at once apply each file exactly once", async () => {
    const fresh = await freshPostgresDatabase("daarion_migrate");
    const a = postgres(fresh.url, { max: 2, onnotice: () => {} }) as unknown as Sql;
    const b = postgres(fresh.url, { max: 2, onnotice: () => {} }) as unknown as Sql;
    try {
      const [ranA, ranB] = await Promise.all([migrate(a, log), migrate(b, log)]);
      expect([...ranA, ...ranB].sort((x, y) => x - y)).toEqual(readMigrations().map((f) => f.version));
      const rows = await a`select version from schema_migrations order by version`;
      expect(rows.map((r) => r.version)).toEqual(readMigrations().map((f) => f.version));
      await expectSchema(a);
    } finally {
      await a.end();
      await b.end();
      await fresh.drop();
    }
  }, 30000);
});

async function expectSchema(sql: Sql) {
  const tables = await sql`select table_name from information_schema.tables where table_schema = 'public' order by table_name`;
  expect(tables.map((t) => t.table_name)).toEqual(
    expect.arrayContaining(["channels", "messages", "channel_members", "message_reactions", "channel_events", "schema_migrations"]),
  );
  const cols = await sql`select column_name from information_schema.columns where table_name = 'messages'`;
  expect(cols.map((c) => c.column_name)).toEqual(expect.arrayContaining(["seq", "delivery_state", "outbox_content"]));
}
