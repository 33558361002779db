/**
 * The limit of this stack for a send: Bun.serve parses the same JSON body and does one INSERT
 * through postgres.js into a table shaped like `messages`, per-channel seq included, and
 * answers the row as JSON. No actor, no Matrix, no validation framework.
 */
import postgres from "postgres";

const sql = postgres(process.env.DATABASE_URL!, { max: Number(process.env.POOL ?? 10), onnotice: () => {} });
await sql`create table if not exists bench_messages (
  id uuid primary key default gen_random_uuid(),
  channel_id uuid not null,
  seq bigint not null,
  sender_id text not null,
  content_preview text not null,
  created_at timestamptz not null default now(),
  unique (channel_id, seq))`;

const seqs = new Map<string, number>();
Bun.serve({
  port: Number(process.env.PORT),
  hostname: "127.0.0.1",
  async fetch(req) {
    const url = new URL(req.url);
    if (url.pathname === "/health") return new Response("ok");
    const m = /^\/api\/messaging\/channels\/([0-9a-f-]{36})\/messages$/.exec(url.pathname);
    if (!m || req.method !== "POST") return new Response("not found", { status: 404 });
    const body = (await req.json()) as { text?: unknown };
    if (typeof body.text !== "string") return Response.json({ error: "BAD" }, { status: 400 });
    const channelId = m[1]!;
    const seq = (seqs.get(channelId) ?? 0) + 1;
    seqs.set(channelId, seq);
    const [row] = await sql`insert into bench_messages (channel_id, seq, sender_id, content_preview)
      values (${channelId}, ${seq}, ${req.headers.get("x-user-id") ?? "anon"}, ${body.text}) returning *`;
    return Response.json(row, { status: 201 });
  },
});
