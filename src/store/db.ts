import { mkdirSync } from "node:fs";
import { resolve } from "node:path";
import postgres from "postgres";
import type { Logger } from "../log.ts";

export type Sql = postgres.Sql<{}>;
export type Tx = postgres.TransactionSql<{}>;

export interface Database {
  sql: Sql;
  /** "postgres" for DATABASE_URL, "pglite" for the embedded database. */
  kind: "postgres" | "pglite";
  close(): Promise<void>;
}

const commonOptions = {
  onnotice: () => {},
  // Timestamps travel as ISO strings in API payloads; keep JS Dates inside the service.
  connection: { application_name: "daarion-messaging" },
} as const;

export async function openDatabase(
  opts: { url?: string; dataDir: string; poolMax: number },
  log: Logger,
): Promise<Database> {
  if (opts.url) {
    const sql = postgres(opts.url, { ...commonOptions, max: opts.poolMax }) as unknown as Sql;
    await sql`select 1`;
    log.info({ db: "postgres" }, "database connected");
    return { sql, kind: "postgres", close: () => sql.end({ timeout: 5 }) };
  }
  return openEmbedded(opts.dataDir, log);
}

/**
 * PGlite behind pglite-socket, so that the embedded database is reached through the same
 * postgres.js code (and the same migrations) as a real server. PGlite is one session, so
 * the pool is a single connection: interleaving several clients' extended-protocol
 * messages on one session is not safe.
 */
async function openEmbedded(dataDir: string, log: Logger): Promise<Database> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  const inMemory = dataDir === ":memory:";
  let path: string | undefined;
  if (!inMemory) {
    path = resolve(dataDir, "pglite");
    mkdirSync(path, { recursive: true });
  }
  const pglite = await PGlite.create(path);
  const server = new PGLiteSocketServer({ db: pglite, host: "127.0.0.1", port: 0, maxConnections: 1 });
  await server.start();
  const [host, port] = server.getServerConn().split(":");
  const sql = postgres({
    ...commonOptions,
    host,
    port: Number(port),
    user: "postgres",
    database: "postgres",
    max: 1,
  }) as unknown as Sql;
  try {
    await sql`select 1`;
  } catch (err) {
    await server.stop();
    await pglite.close();
    throw err;
  }
  log.info({ db: "pglite", data_dir: inMemory ? ":memory:" : path }, "embedded database started");
  return {
    sql,
    kind: "pglite",
    async close() {
      await sql.end({ timeout: 5 });
      await server.stop();
      await pglite.close();
    },
  };
}
