import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Sql } from "./db.ts";
import type { Logger } from "../log.ts";

const MIGRATIONS_DIR = join(import.meta.dir, "..", "..", "migrations");
// An arbitrary constant shared by every instance: the advisory lock that serialises runners.
const MIGRATION_LOCK_KEY = 7004_0001;

export interface MigrationFile {
  version: number;
  name: string;
  sql: string;
}

export function readMigrations(dir = MIGRATIONS_DIR): MigrationFile[] {
  return readdirSync(dir)
    .filter((f) => /^\d+_[\w-]+\.sql$/.test(f))
    .map((f) => ({ version: Number(f.split("_")[0]), name: f, sql: readFileSync(join(dir, f), "utf8") }))
    .sort((a, b) => a.version - b.version);
}

/**
 * Applies forward-only migrations, each in its own transaction. Two processes starting at
 * once queue on a transaction-scoped advisory lock per file and re-check what is applied,
 * so every file runs exactly once.
 */
export async function migrate(sql: Sql, log: Logger, files = readMigrations()): Promise<number[]> {
  await sql`
    create table if not exists schema_migrations (
      version integer primary key,
      name text not null,
      applied_at timestamptz not null default now()
    )`.catch(async (err) => {
    // Two runners racing on the very first CREATE can collide on the catalog; the loser
    // simply finds the table there.
    if (!(await tableExists(sql))) throw err;
  });
  const applied: number[] = [];
  for (const file of files) {
    const ran = await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_KEY})`;
      const [done] = await tx`select 1 from schema_migrations where version = ${file.version}`;
      if (done) return false;
      await tx.unsafe(file.sql);
      await tx`insert into schema_migrations (version, name) values (${file.version}, ${file.name})`;
      return true;
    });
    if (ran) {
      applied.push(file.version);
      log.info({ migration: file.name }, "migration applied");
    }
  }
  return applied;
}

async function tableExists(sql: Sql): Promise<boolean> {
  const [row] = await sql`select to_regclass('schema_migrations') is not null as exists`;
  return Boolean(row?.exists);
}
