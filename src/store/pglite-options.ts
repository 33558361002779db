/**
 * PostgreSQL settings of the embedded database: memory only (fsync, synchronous_commit and the
 * WAL stay PGlite's defaults). PGlite's WebAssembly heap holds PostgreSQL's shared memory, and
 * what PostgreSQL maps there is zero-filled, so all of shared_buffers is resident from the
 * start: initdb's 128MB was half of an idle service's RSS (bench/SUMMARY.md, "e) Memory").
 * 16MB holds the newest pages of the tables and indexes a send writes; older pages are read
 * back from the data directory's files (the OS page cache).
 */
export const EMBEDDED_POSTGRES_SETTINGS = ["shared_buffers=16MB"] as const;

/** PGlite.create's options for the embedded database, given PGlite.defaultStartParams. */
export function embeddedPgliteOptions(defaultStartParams: readonly string[]) {
  const settings = EMBEDDED_POSTGRES_SETTINGS.flatMap((setting) => ["-c", setting]);
  return {
    // After PGlite's own parameters, which stay as they are. The command line wins over
    // postgresql.conf, so a data directory made before these settings gets them too.
    startParams: [...defaultStartParams, ...settings],
    // initdb's backends run with them, and it writes them into the new postgresql.conf.
    initDbStartParams: settings,
  };
}
