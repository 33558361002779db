import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { PGlite } from "@electric-sql/pglite";
import { openDatabase } from "../../src/store/db.ts";
import { EMBEDDED_POSTGRES_SETTINGS } from "../../src/store/pglite-options.ts";

const log = pino({ level: "silent" });
const dir = mkdtempSync(join(tmpdir(), "embedded-settings-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const names = EMBEDDED_POSTGRES_SETTINGS.map((s) => s.split("=")[0]!);
// PostgreSQL sizes these from shared_buffers (their default, 0 or -1, means "from shared_buffers"),
// or reports the shared memory it made: they follow the one setting that changed.
const derived = [
  "wal_buffers",
  "commit_timestamp_buffers",
  "subtransaction_buffers",
  "transaction_buffers",
  "io_max_concurrency",
  "shared_memory_size",
  "shared_memory_size_in_huge_pages",
];

async function settingsOf(dataDir: string): Promise<Record<string, string>> {
  const db = await openDatabase({ dataDir, poolMax: 1 }, log);
  try {
    const rows = await db.sql<{ name: string; setting: string }[]>`select name, setting from pg_settings`;
    return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
  } finally {
    await db.close();
  }
}

describe("the embedded database's PostgreSQL settings", () => {
  test("a new data directory runs with 16MB of shared_buffers, and initdb wrote it into postgresql.conf", async () => {
    const dataDir = join(dir, "new");
    const settings = await settingsOf(dataDir);
    expect(settings.shared_buffers).toBe(String((16 * 1024) / 8)); // in 8kB pages
    expect(readFileSync(join(dataDir, "pglite", "postgresql.conf"), "utf8")).toMatch(/^shared_buffers = 16MB/m);
  }, 60_000);

  test("a data directory made before (initdb's 128MB in postgresql.conf) gets them too: the command line wins", async () => {
    const dataDir = join(dir, "older");
    await settingsOf(dataDir);
    const conf = join(dataDir, "pglite", "postgresql.conf");
    writeFileSync(conf, readFileSync(conf, "utf8").replace(/^shared_buffers = 16MB/m, "shared_buffers = 128MB"));
    expect(readFileSync(conf, "utf8")).toMatch(/^shared_buffers = 128MB/m);
    expect((await settingsOf(dataDir)).shared_buffers).toBe(String((16 * 1024) / 8));
  }, 60_000);

  test("every other setting is PGlite's own (fsync, synchronous_commit, the WAL, …): only memory is tuned", async () => {
    const ours = await settingsOf(join(dir, "compare"));
    const bare = await PGlite.create(join(dir, "bare"));
    let theirs: Record<string, string>;
    try {
      const rows = (await bare.query<{ name: string; setting: string }>("select name, setting from pg_settings")).rows;
      theirs = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    } finally {
      await bare.close();
    }
    expect(Object.keys(ours).sort()).toEqual(Object.keys(theirs).sort());
    const differing = Object.keys(ours).filter((name) => ours[name] !== theirs[name]);
    expect(differing.sort()).toEqual([...names, ...derived].sort());
    for (const name of ["fsync", "synchronous_commit", "full_page_writes", "wal_level", "wal_sync_method"]) expect(ours[name]).toBe(theirs[name]!);
  }, 60_000);
});
