import { existsSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";
import type { Logger } from "../log.ts";
import { lockDataDir } from "../lifecycle/data-dir-lock.ts";
import { embeddedPgliteOptions } from "./pglite-options.ts";

export type Sql = postgres.Sql<{}>;
export type Tx = postgres.TransactionSql<{}>;
/** A piece of a statement, spliced into another with `${fragment}`. */
export type Fragment = postgres.PendingQuery<postgres.Row[]>;

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

/** The cheapest round trip that proves the database answers (readiness). */
export async function pingDatabase(sql: Sql): Promise<void> {
  await sql`select 1`;
}

export async function openDatabase(
  opts: { url?: string; dataDir: string; poolMax: number; /** Cluster mode: this process's fence identity (migration 016). */ fenceIdentity?: string },
  log: Logger,
): Promise<Database> {
  if (opts.url) {
    // Every connection says who it is, so the fence triggers can refuse a stale owner's writes.
    // No JIT: the service's queries take well under a millisecond, and a plan whose estimate
    // crosses jit_above_cost (the search across channels, say) spent 30 ms compiling.
    const connection = { ...commonOptions.connection, jit: "off", ...(opts.fenceIdentity ? { "daarion.instance": opts.fenceIdentity } : {}) };
    const sql = postgres(opts.url, { ...commonOptions, connection, max: opts.poolMax }) as unknown as Sql;
    await sql`select 1`;
    log.info({ db: "postgres" }, "database connected");
    return { sql, kind: "postgres", close: () => sql.end({ timeout: 5 }) };
  }
  return openEmbedded(opts.dataDir, log);
}

/** PGlite and its socket server: what the embedded database costs (about 115 MB resident) to create. */
interface EmbeddedServer {
  key: string;
  host: string;
  port: number;
  /** Resolves once the server has let go of its one connection, so the next client gets in. */
  released(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Under `bun --hot` (main.ts asks for it with keepEmbeddedDatabaseAcrossReloads) the embedded
 * server outlives one start: stop() ends only the postgres.js client, the next start after a
 * reload reuses the server, and closeKeptEmbeddedDatabase() closes it when the process stops.
 * Kept on globalThis, which a reload does not reset.
 */
type KeptState = { keep: boolean; server?: EmbeddedServer };
const kept = ((globalThis as Record<symbol, unknown>)[Symbol.for("daarion-messaging.embedded-database")] ??= { keep: false }) as KeptState;

export function keepEmbeddedDatabaseAcrossReloads(): void {
  kept.keep = true;
}

export async function closeKeptEmbeddedDatabase(): Promise<void> {
  const server = kept.server;
  kept.server = undefined;
  await server?.close();
}

/**
 * PGlite behind pglite-socket, so that the embedded database is reached through the same
 * postgres.js code (and the same migrations) as a real server. PGlite is one session, so
 * the pool is a single connection: interleaving several clients' extended-protocol
 * messages on one session is not safe.
 */
async function openEmbedded(dataDir: string, log: Logger): Promise<Database> {
  const key = dataDir === ":memory:" ? dataDir : resolve(dataDir);
  let server = kept.server?.key === key ? kept.server : undefined;
  if (server) {
    log.info({ db: "pglite" }, "embedded database kept across reload");
  } else {
    await closeKeptEmbeddedDatabase();
    server = await startEmbeddedServer(key);
    if (kept.keep) kept.server = server;
    log.info({ db: "pglite", data_dir: key === ":memory:" ? key : join(key, "pglite") }, "embedded database started");
  }
  const embedded = server;
  const sql = postgres({
    ...commonOptions,
    host: embedded.host,
    port: embedded.port,
    user: "postgres",
    database: "postgres",
    max: 1,
  }) as unknown as Sql;
  const close = async () => {
    await sql.end({ timeout: 5 });
    if (kept.server === embedded) await embedded.released();
    else await embedded.close();
  };
  try {
    await sql`select 1`;
  } catch (err) {
    await close();
    throw err;
  }
  return { sql, kind: "pglite", close };
}

/**
 * A new database is made by a second, throwaway PGlite instance that runs initdb: its heap, a
 * copy of that heap, the data directory as a tar. In this process that was about 350 MB held
 * until JSC's next full collection, 10 s after start when idle and minutes under a run of
 * sends, and a forced collection freed it only some of the time (the conservative stack scan);
 * bench/SUMMARY.md, "e) Memory". So initdb runs in a child process, whose memory leaves with
 * it, and this process opens the database it made. `:memory:` has nothing to hand over and
 * runs initdb in place.
 */
async function initdbInChild(dir: string): Promise<void> {
  const script = fileURLToPath(new URL("./pglite-initdb.ts", import.meta.url));
  const child = Bun.spawn([process.execPath, script, dir], { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  const [code, stderr] = await Promise.all([child.exited, new Response(child.stderr).text()]);
  if (code !== 0) {
    const last = stderr.trim().split("\n").slice(-3).join(" | ");
    throw new Error(`could not make the embedded database in ${dir} (initdb exited with ${code}${last ? `: ${last}` : ""})`);
  }
}

async function startEmbeddedServer(key: string): Promise<EmbeddedServer> {
  const { PGlite } = await import("@electric-sql/pglite");
  const { PGLiteSocketServer } = await import("@electric-sql/pglite-socket");
  let unlock = () => {};
  let path: string | undefined;
  if (key !== ":memory:") {
    mkdirSync(key, { recursive: true });
    unlock = lockDataDir(key);
    path = join(key, "pglite");
    mkdirSync(path, { recursive: true });
  }
  try {
    if (path !== undefined && !existsSync(join(path, "PG_VERSION"))) await initdbInChild(path);
    const pglite = await PGlite.create(path, embeddedPgliteOptions(PGlite.defaultStartParams));
    const server = new PGLiteSocketServer({ db: pglite, host: "127.0.0.1", port: 0, maxConnections: 1 });
    try {
      await server.start();
    } catch (err) {
      await pglite.close();
      throw err;
    }
    const [host, port] = server.getServerConn().split(":");
    return {
      key,
      host: host!,
      port: Number(port),
      async released() {
        // The socket server learns of the closed connection an event-loop turn or so later.
        const deadline = Date.now() + 5000;
        while (server.getStats().activeConnections > 0 && Date.now() < deadline) await Bun.sleep(5);
      },
      async close() {
        await server.stop();
        await pglite.close();
        unlock();
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}
