/**
 * `bun run reconcile [--channel ID] [--fix]`: compares the message index with each channel's
 * Matrix timeline, prints the differences, and with --fix repairs them. It reads the service's
 * environment. Exit code: 0 consistent (or all fixed), 1 differences remain, 2 bad usage or setup.
 *
 * Run --fix with the service stopped: the channel actors here and in the service would both
 * number new messages. With the embedded database (no DATABASE_URL) even a report needs the
 * service stopped, because only one process can open PGlite's data directory.
 */
import pino from "pino";
import { parseArgs } from "node:util";
import { ConfigError, loadConfig, type Config } from "../src/config.ts";
import { createMatrixBackend } from "../src/app.ts";
import { openDatabase } from "../src/store/db.ts";
import { migrate } from "../src/store/migrate.ts";
import { ChannelRegistry } from "../src/channel/registry.ts";
import { channelTables } from "../src/features/index.ts";
import { MemoryEventBus } from "../src/events/memory.ts";
import { NatsEventBus } from "../src/events/nats.ts";
import type { EventBus } from "../src/events/bus.ts";
import { reconcile, UnknownChannelError } from "../src/features/reconcile/reconcile.ts";
import { channelReportLines, exitCodeFor, summaryLine } from "../src/features/reconcile/report.ts";
import { orphanReportLines, reconcileCreations, unresolvedOrphans } from "../src/features/reconcile/orphans.ts";
import { reconcileSpaces, spaceReportLines, unresolvedSpaces } from "../src/features/spaces/reconcile.ts";

const USAGE = "usage: bun run reconcile [--channel ID] [--fix]";

function parse(): { channelId: string | null; fix: boolean } {
  try {
    const { values } = parseArgs({
      options: { channel: { type: "string" }, fix: { type: "boolean", default: false }, help: { type: "boolean", default: false } },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(USAGE);
      process.exit(0);
    }
    return { channelId: values.channel ?? null, fix: values.fix ?? false };
  } catch (err) {
    console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exit(2);
  }
}

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
}

async function main(): Promise<number> {
  const args = parse();
  const config = readConfig();
  // The report owns stdout; log records go to stderr.
  const log = pino({ level: config.LOG_LEVEL === "info" ? "warn" : config.LOG_LEVEL, base: { service: "daarion-messaging", component: "reconcile" } }, pino.destination(2));
  const db = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, poolMax: 4 }, log);
  const tables = channelTables();
  const matrix = createMatrixBackend(config, db.sql, log, tables.handlers.types);
  const events: EventBus = config.NATS_URL ? new NatsEventBus(config.NATS_URL, db.sql, log) : new MemoryEventBus();
  // No WebSocket clients are connected to this process: frames have nowhere to go.
  const registry = new ChannelRegistry({ ...tables, sql: db.sql, matrix, events, log, broadcast: () => {}, mailboxSize: config.ACTOR_MAILBOX_SIZE, idleMs: config.ACTOR_IDLE_MS });
  try {
    await migrate(db.sql, log);
    const { summary } = await reconcile(
      { sql: db.sql, matrix, registry, log },
      { channelId: args.channelId, fix: args.fix, onChannel: (r) => console.log(channelReportLines(r, args.fix).join("\n")) },
    );
    // Creations cut short (a room with our alias, no channel row) belong to no channel: whole runs only.
    const orphans = args.channelId === null ? await reconcileCreations({ sql: db.sql, matrix, events, log }, args.fix) : [];
    for (const line of orphanReportLines(orphans)) console.log(line);
    // MicroDAOs whose channels are not all in its Matrix space (channels made before spaces): whole runs only.
    const spaces = args.channelId === null ? await reconcileSpaces({ sql: db.sql, matrix, log }, args.fix) : [];
    for (const line of spaceReportLines(spaces)) console.log(line);
    console.log(summaryLine(summary));
    return unresolvedOrphans(orphans) + unresolvedSpaces(spaces) > 0 ? 1 : exitCodeFor(summary, args.fix);
  } catch (err) {
    console.error(err instanceof UnknownChannelError ? err.message : `reconcile failed: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  } finally {
    await registry.stop();
    if (events instanceof NatsEventBus) await events.flushed();
    await events.close();
    await matrix.close();
    await db.close();
  }
}

process.exit(await main());
