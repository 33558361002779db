import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { BEFORE_LOOKBACK } from "../../src/store/messages.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

/** A message as the index holds it: seq is the order it was indexed in, createdAt the sender's clock. */
interface Row {
  seq: number;
  createdAt: Date;
  threadOf?: number;
  deleted?: boolean;
  failed?: boolean;
}

const T0 = Date.parse("2026-01-01T00:00:00Z");

/** Indexes rows straight into the table, as Matrix might have delivered them (timestamps out of order). */
async function seed(channelId: string, rows: Row[]): Promise<Map<number, string>> {
  const ids = new Map<number, string>(rows.map((r) => [r.seq, crypto.randomUUID()]));
  const { sql } = server.app.deps;
  for (const r of rows) {
    await sql`
      insert into messages (id, channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id,
                            content_preview, delivery_state, created_at, thread_id, deleted_at)
      values (${ids.get(r.seq)!}, ${channelId}, ${r.seq}, ${`$seed-${ids.get(r.seq)}`}, 'm.room.message', 'user:admin', 'human',
              '@user-admin:daarion.city', ${`m${r.seq}`}, ${r.failed ? "failed" : "sent"}, ${r.createdAt},
              ${r.threadOf === undefined ? null : ids.get(r.threadOf)!}, ${r.deleted ? r.createdAt : null})`;
  }
  return ids;
}

/** What `before=` has always meant: created before the instant, newest seq first. */
function expectedPage(rows: Row[], before: Date, limit: number, threadRoot: number | null): string[] {
  return rows
    .filter((r) => !r.deleted && !r.failed && (r.threadOf ?? null) === threadRoot && r.createdAt < before)
    .sort((a, b) => b.seq - a.seq)
    .slice(0, limit)
    .map((r) => `m${r.seq}`);
}

async function page(path: string): Promise<{ previews: string[]; cursor: string | null }> {
  const res = await server.api(path, { as: "user:admin" });
  expect(res.status).toBe(200);
  const body: Array<{ content_preview: string }> = await res.json();
  return { previews: body.map((m) => m.content_preview), cursor: res.headers.get("x-next-cursor") };
}

const at = (ms: number) => new Date(T0 + ms);

describe("before= paging", () => {
  test("a before= page holds the newest messages created before the instant, whatever the instant", async () => {
    const channel = await createChannel(server, "user:admin");
    // Timestamps a little out of seq order (senders' clocks), some deleted, failed or thread replies.
    const rows: Row[] = Array.from({ length: 60 }, (_, i) => {
      const seq = i + 1;
      return {
        seq,
        createdAt: at(seq * 1000 + (((seq * 7919) % 7) - 3) * 900),
        deleted: seq % 11 === 0,
        failed: seq % 13 === 0,
        threadOf: seq > 5 && seq % 4 === 0 ? 5 : undefined,
      };
    });
    await seed(channel.id, rows);
    const instants = [...rows.map((r) => r.createdAt), at(0), at(-1000), at(61_000), at(10_000_000), at(30_500)];
    for (const before of instants) {
      for (const limit of [1, 7, 200]) {
        const got = await page(`/api/messaging/channels/${channel.id}/messages?limit=${limit}&before=${before.toISOString()}`);
        const want = expectedPage(rows, before, limit, null);
        expect({ before, limit, got: got.previews }).toEqual({ before, limit, got: want });
        expect(got.cursor).toBe(want.length === limit ? want.at(-1)!.slice(1) : null);
      }
    }
  });

  test("a thread's before= pages are its replies created before the instant, and X-Next-Cursor goes on from there", async () => {
    const channel = await createChannel(server, "user:admin");
    const rows: Row[] = Array.from({ length: 40 }, (_, i) => {
      const seq = i + 1;
      return { seq, createdAt: at(seq * 1000 - (seq % 3) * 900), threadOf: seq > 1 && seq % 2 === 0 ? 1 : undefined, deleted: seq === 20 };
    });
    const ids = await seed(channel.id, rows);
    const thread = `/api/messaging/channels/${channel.id}/messages/${ids.get(1)}/thread`;
    const before = at(30_000);
    const first = await page(`${thread}?limit=4&before=${before.toISOString()}`);
    expect(first.previews).toEqual(expectedPage(rows, before, 4, 1));
    expect(first.previews).toEqual(["m28", "m26", "m24", "m22"]);
    const next = await page(`${thread}?limit=4&cursor=${first.cursor}`);
    expect(next.previews).toEqual(["m18", "m16", "m14", "m12"]);
    expect((await page(`${thread}?before=${at(0).toISOString()}`)).previews).toEqual([]);
  });

  test("a message indexed late with an older timestamp is on the before= page unless BEFORE_LOOKBACK younger ones were indexed first", async () => {
    const channel = await createChannel(server, "user:admin");
    // seq 1..n created at seconds 1..n; then two from clocks that were behind, indexed last.
    const n = BEFORE_LOOKBACK + 20;
    const rows: Row[] = Array.from({ length: n }, (_, i) => ({ seq: i + 1, createdAt: at((i + 1) * 1000) }));
    const lateWithin = { seq: n + 1, createdAt: at((n - BEFORE_LOOKBACK + 1) * 1000 + 500) };
    const lateBeyond = { seq: n + 2, createdAt: at(500) };
    await seed(channel.id, [...rows, lateWithin, lateBeyond]);
    const listing = `/api/messaging/channels/${channel.id}/messages`;

    // Before the end: BEFORE_LOOKBACK - 1 younger messages came before lateWithin, so it leads
    // the page as its seq says; all n came before lateBeyond, so that one is left out rather
    // than the channel being read from the top.
    const end = at(n * 1000 + 1);
    expect((await page(`${listing}?limit=3&before=${end.toISOString()}`)).previews).toEqual([`m${n + 1}`, `m${n}`, `m${n - 1}`]);
    // Early on, only m1 is younger than lateBeyond and older than the instant: it is listed.
    expect((await page(`${listing}?before=${at(2000).toISOString()}`)).previews).toEqual([`m${n + 2}`, "m1"]);
    // And the newest pages list both where they were indexed.
    expect((await page(`${listing}?limit=2`)).previews).toEqual([`m${n + 2}`, `m${n + 1}`]);
  });
});
