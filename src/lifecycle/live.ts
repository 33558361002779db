/**
 * Process-wide counts of live long-lived resources (servers, pollers, actors, database
 * pools, broker connections). Kept on globalThis so that it survives `bun --hot` module
 * re-evaluation: after a reload every count must be what one instance holds, never two.
 */
type Kind = "http_server" | "sync_poller" | "actors" | "database" | "event_bus" | "matrix_backend" | "preview_worker";

const KEY = Symbol.for("daarion-messaging.live");
const store = globalThis as unknown as Record<symbol, Record<string, number>>;
const counts: Record<string, number> = (store[KEY] ??= {});

export function acquire(kind: Kind, n = 1): () => void {
  counts[kind] = (counts[kind] ?? 0) + n;
  let released = false;
  return () => {
    if (released) return;
    released = true;
    counts[kind] = (counts[kind] ?? 0) - n;
  };
}

export function liveCounts(): Record<string, number> {
  return { ...counts };
}
