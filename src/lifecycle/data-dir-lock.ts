import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

class DataDirLockedError extends Error {}

const LOCK_FILE = "daarion-messaging.lock";

/**
 * One process per embedded data directory: PGlite has no lock of its own, and two processes on
 * one directory each hand out the same per-channel seq. The lock is a pid file; a holder that
 * died (kill -9, a crash) leaves a file naming a process that no longer runs, which the next
 * start takes over. Known gaps: a process in another pid namespace (another container sharing
 * the volume) is not seen; two processes starting at the same instant on a stale file may both
 * take it over. Returns the release.
 */
export function lockDataDir(dir: string): () => void {
  const path = join(dir, LOCK_FILE);
  const me = processIdentity(process.pid);
  // Written aside and linked into place, so the lock file never exists without its holder.
  const draft = `${path}.${process.pid}`;
  writeFileSync(draft, me);
  try {
    for (;;) {
      if (tryLink(draft, path)) break;
      const holder = readHolder(path);
      // This very process (it reopens the directory after a failed start, say).
      if (holder === me) break;
      const pid = Number(holder.split(" ")[0]);
      if (holder && Number.isInteger(pid) && pid > 0 && processIdentity(pid) === holder) {
        throw new DataDirLockedError(`DATA_DIR ${dir} is in use by another daarion-messaging process (pid ${pid}); stop it or use another DATA_DIR`);
      }
      rmSync(path, { force: true });
    }
  } finally {
    rmSync(draft, { force: true });
  }
  return () => {
    if (readHolder(path) === me) rmSync(path, { force: true });
  };
}

function tryLink(from: string, to: string): boolean {
  try {
    linkSync(from, to);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return false;
    throw err;
  }
}

function readHolder(path: string): string {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return "";
  }
}

/**
 * "pid starttime": the start time (Linux /proc) tells a live holder from an unrelated process
 * that got the dead holder's pid, as happens after a container restart. Without /proc the pid
 * alone is checked. "" when no such process runs.
 */
function processIdentity(pid: number): string {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return "";
  }
  try {
    // Field 22 of /proc/<pid>/stat, counted after the parenthesised command name.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const startTime = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
    return `${pid} ${startTime}`;
  } catch {
    return String(pid);
  }
}
