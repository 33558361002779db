import postgres from "postgres";
import { closedLoop, type LoadResult } from "../lib/load.ts";
import { BENCH_USER, startService } from "../lib/service.ts";
import { sized, type Plan } from "../lib/preset.ts";
import { knobList, round } from "../lib/stats.ts";

const WORDS = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india", "juliet", "kilo", "lima"];

const QUERIES = 6;

export function readPlan(): Plan<{ rows: number; concurrencies: number[]; seconds: number }> {
  const rows = sized("BENCH_READ_ROWS", { quick: 100_000, full: 1_000_000 });
  const concurrencies = knobList("BENCH_READ_CONCURRENCY", [1, 4]);
  const seconds = sized("BENCH_READ_SECONDS", { quick: 3, full: 5 });
  // Bulk insert with its indexes at ~10,000 rows/s here, then each query warmed and timed.
  const estimateSeconds = 8 + rows / 10_000 + QUERIES * (0.5 + concurrencies.length * seconds);
  return { params: { rows, concurrencies, seconds }, estimateSeconds: Math.round(estimateSeconds) };
}

/**
 * c) Reads on one channel holding many indexed messages, bulk-inserted with SQL (the send path
 * would take hours for a million). First page, a deep page (cursor near the oldest messages),
 * a `before=` page in the middle, and full-text search on the same rows, each at fixed
 * concurrency for a fixed time.
 */
export async function readScenario() {
  const { rows, concurrencies, seconds } = readPlan().params;

  const service = await startService();
  const results: Record<string, unknown> = {};
  try {
    const channel = await service.createChannel();
    const sql = postgres(service.dbUrl, { max: 1, onnotice: () => {} });
    const t0 = performance.now();
    // Rare words make selective searches; common ones make broad searches (many hits to rank).
    await sql`
      insert into messages (channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id,
                            content_preview, delivery_state, created_at)
      select ${channel}, i, '$bench' || i, 'm.room.message', 'user:bench', 'human', '@bench:daarion.city',
             'message ' || i || ' ' || (${WORDS}::text[])[1 + i % 12] || ' ' || case when i % 1000 = 0 then 'needle' else 'hay' end,
             'sent', now() - make_interval(secs => ${rows} - i)
      from generate_series(1, ${rows}::int) as i`;
    await sql`analyze messages`;
    const loadSeconds = round((performance.now() - t0) / 1000);
    const [counted] = await sql`select count(*)::int as count from messages where channel_id = ${channel}`;
    const count = Number(counted?.count ?? 0);
    await sql.end();
    console.log(`read: ${count} rows inserted in ${loadSeconds} s`);

    const base = `${service.url}/api/messaging`;
    const middle = new Date(Date.now() - (rows / 2) * 1000).toISOString();
    const queries: Record<string, string> = {
      first_page: `${base}/channels/${channel}/messages?limit=50`,
      deep_page_cursor: `${base}/channels/${channel}/messages?limit=50&cursor=${Math.max(51, Math.round(rows / 100))}`,
      middle_page_before: `${base}/channels/${channel}/messages?limit=50&before=${encodeURIComponent(middle)}`,
      search_rare: `${base}/search?q=needle&channel_id=${channel}&limit=20`,
      search_common: `${base}/search?q=alpha&channel_id=${channel}&limit=20`,
      // The deepest page there is: search ranks the newest 1,000 matches (RANKED_MATCHES).
      search_common_deep: `${base}/search?q=alpha&channel_id=${channel}&limit=20&offset=980`,
      // Across every channel the caller may read (no channel_id): the matches of all of them.
      search_common_all_channels: `${base}/search?q=alpha&limit=20`,
    };
    for (const [name, url] of Object.entries(queries)) {
      await run(url, 2, 0.5); // warm
      for (const concurrency of concurrencies) {
        const r = await run(url, concurrency, seconds);
        results[`${name}@c${concurrency}`] = { query: name, concurrency, ...summary(r) };
        console.log(`read ${name} c=${concurrency}: ${r.perSecond}/s p50 ${r.latency.p50} p99 ${r.latency.p99} ms${r.errors ? ` errors ${r.errors} ${r.firstError}` : ""}`);
      }
    }
    return { scenario: "read", params: { rows, concurrencies, seconds, load_seconds: loadSeconds }, results };
  } finally {
    await service.stop();
  }
}

const summary = (r: LoadResult) => ({ per_second: r.perSecond, ok: r.ok, errors: r.errors, p50_ms: r.latency.p50, p99_ms: r.latency.p99, max_ms: r.latency.max, meets_5ms_p99: r.latency.p99 <= 5, first_error: r.firstError });

function run(url: string, concurrency: number, seconds: number) {
  return closedLoop(concurrency, { seconds }, async () => {
    const res = await fetch(url, { headers: { "x-user-id": BENCH_USER } });
    await res.arrayBuffer();
    return res.status === 200 || `${res.status}`;
  });
}
