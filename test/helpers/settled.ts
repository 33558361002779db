import type { TestServer } from "./server.ts";

/**
 * Resolves once the local homeserver's events so far are indexed: the sync poller has passed
 * the newest event, the inbox is empty and the channel's actor has nothing queued. Tests that
 * count mailbox slots start from here, so a late echo of the channel's creation takes none.
 */
export async function settled(server: TestServer, channelId: string, timeoutMs = 10_000): Promise<void> {
  const { sql, registry } = server.app.deps;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const [row] = await sql`
      select (select coalesce(max(stream_ordering), 0) from local_matrix_events)::bigint as newest,
             (select next_batch from matrix_sync_state limit 1) as next_batch,
             (select count(*) from matrix_inbox)::int as inbox`;
    const synced = Number(/^s(\d+)/.exec(String(row?.next_batch ?? ""))?.[1] ?? -1);
    const idle = !registry.has(channelId) || registry.get(channelId).queued === 0;
    if (synced >= Number(row?.newest) && row?.inbox === 0 && idle) return;
    if (Date.now() > deadline) throw new Error(`not settled: synced ${synced} of ${row?.newest}, inbox ${row?.inbox}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}
