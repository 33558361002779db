import { ConfigError, loadConfig, type Config } from "./config.ts";
import { startApp, type RunningApp } from "./app.ts";
import { createLogger, type Logger } from "./log.ts";
import { closeKeptEmbeddedDatabase, keepEmbeddedDatabaseAcrossReloads } from "./store/db.ts";

/**
 * Entry point. Under `bun --hot` this module is evaluated again on every change; the running
 * instance is kept on globalThis and fully stopped before the new one starts, so a reload
 * never leaves a second server, poller, actor set or database connection behind. The embedded
 * database alone is kept across reloads (reopening PGlite costs about 115 MB each time) and
 * closed when the process stops.
 */
type HotState = { current?: Promise<RunningApp | null>; signalsInstalled?: boolean; log?: Logger };
const hot = ((globalThis as Record<symbol, unknown>)[Symbol.for("daarion-messaging.main")] ??= {}) as HotState;

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
}

const config = readConfig();
const log = createLogger(config.LOG_LEVEL);
hot.log = log;
keepEmbeddedDatabaseAcrossReloads();
const previous = hot.current;
hot.current = (async () => {
  const old = await previous?.catch(() => null);
  await old?.stop();
  return startApp(config, { log });
})().catch(async (err) => {
  console.error(`daarion-messaging failed to start: ${err instanceof Error ? err.message : String(err)}`);
  await closeKeptEmbeddedDatabase().catch(() => {});
  process.exit(1);
});

if (!hot.signalsInstalled) {
  hot.signalsInstalled = true;
  // A stray failure in background work (a database restart mid-query, say) is logged, and must
  // not take the whole service, and every channel with it, down.
  process.on("unhandledRejection", (reason) => {
    hot.log?.error({ err: reason }, "unhandled rejection");
  });
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    process.once(signal, async () => {
      // Bounded: a stop that hangs (a homeserver that never answers, say) must not keep the
      // process from exiting; pending sends are durable and resume on the next start.
      const deadline = setTimeout(() => {
        console.error(`daarion-messaging: shutdown took longer than ${config.SHUTDOWN_TIMEOUT_MS} ms; exiting`);
        process.exit(1);
      }, config.SHUTDOWN_TIMEOUT_MS);
      const running = await hot.current?.catch(() => null);
      await running?.stop();
      await closeKeptEmbeddedDatabase();
      clearTimeout(deadline);
      process.exit(0);
    });
  }
}
