import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import postgres from "postgres";
import type { Subprocess } from "bun";
import { freshPostgresDatabase, serviceMissing } from "../helpers/services.ts";
import { freePort } from "../helpers/process.ts";
import { synapse, synapseMissing } from "../helpers/synapse.ts";
import { toMatrixUserId } from "../../src/domain/ids.ts";
import { matrixBodies, startServiceProcess, tally } from "./fault-harness.ts";

setDefaultTimeout(600_000);

/**
 * Every POST that creates something, retried with the same Idempotency-Key across a kill -9 of
 * the service (real PostgreSQL and Synapse; a service process of this suite's own on a free
 * port, with a fresh database). Clients keep retrying until they get their answer; whatever the
 * kill cut short must end up made exactly once, in the index and in Matrix.
 */
const CLIENTS = 3;
const PER_CLIENT = 8;

describe.skipIf(synapseMissing() || serviceMissing("DATABASE_URL"))("kill -9 with retried creations", () => {
  let dbUrl: string;
  let dropDb: () => Promise<void>;
  let port: number;
  let service: Subprocess | null = null;
  let db: postgres.Sql;
  const run = Date.now().toString(36);
  const figures: string[] = [];
  // NATS is not what these scenarios are about: the service runs with its in-memory bus.
  const { NATS_URL: _nats, ...baseEnv } = process.env;

  async function startService() {
    service = await startServiceProcess({ PORT: String(port), DATABASE_URL: dbUrl }, baseEnv);
  }

  beforeAll(async () => {
    const fresh = await freshPostgresDatabase("daarion_fault_kill");
    dbUrl = fresh.url;
    dropDb = fresh.drop;
    port = await freePort();
    await startService();
    db = postgres(dbUrl, { max: 2, onnotice: () => {} });
  }, 120_000);

  afterAll(async () => {
    service?.kill("SIGKILL");
    await db?.end({ timeout: 1 }).catch(() => {});
    await dropDb?.().catch(() => {});
    console.log(["", "kill -9 retry figures:", ...figures].join("\n"));
  }, 60_000);

  const url = (path: string) => `http://127.0.0.1:${port}${path}`;

  /** POSTs with one Idempotency-Key until an answer in `ok` comes (a refusal other than 409 fails the test). */
  async function postReliably(path: string, key: string, init: () => RequestInit, ok: number[]): Promise<any> {
    const deadline = Date.now() + 240_000;
    for (let attempt = 0; Date.now() < deadline; attempt++) {
      let res: Response | null = null;
      try {
        const req = init();
        res = await fetch(url(path), { ...req, method: "POST", headers: { ...(req.headers as Record<string, string>), "idempotency-key": key } });
      } catch {
        // the service is down: retry
      }
      if (res && ok.includes(res.status)) return res.json();
      // 409 IDEMPOTENCY_IN_PROGRESS says "retry shortly"; any other 4xx (409 SLUG_TAKEN included) is a refusal.
      const body = res && res.status < 500 ? await res.text() : "";
      if (res && res.status < 500 && !body.includes("IDEMPOTENCY_IN_PROGRESS")) throw new Error(`${path} ${key}: refused with ${res.status} ${body}`);
      await Bun.sleep(Math.min(2000, 100 * 2 ** Math.min(attempt, 5))); // client backoff, not synchronisation
    }
    throw new Error(`${path} ${key}: no answer within the deadline`);
  }

  const json = (as: string | null, body: unknown): RequestInit => ({
    headers: { "content-type": "application/json", ...(as ? { "x-user-id": as } : {}) },
    body: JSON.stringify(body),
  });

  /**
   * Runs every client's requests and, once a few are answered, kills the service with -9 the
   * moment `inFlight` sees a request past its first durable write (its answer is then lost),
   * then starts it again. Answers whether the kill hit such a request.
   */
  async function underKill<T>(inFlight: () => Promise<boolean>, perform: (client: number, i: number) => Promise<T>): Promise<{ results: T[]; hit: boolean }> {
    let answered = 0;
    let finished = false;
    let warm: () => void = () => {};
    const warmedUp = new Promise<void>((resolve) => (warm = resolve));
    const clients = Array.from({ length: CLIENTS }, async (_, c) => {
      const out: T[] = [];
      for (let i = 0; i < PER_CLIENT; i++) {
        out.push(await perform(c, i));
        if (++answered === CLIENTS) warm();
      }
      return out;
    });
    const all = Promise.all(clients).finally(() => (finished = true));
    await warmedUp;
    let hit = false;
    while (!finished && !(hit = await inFlight()));
    service!.kill("SIGKILL");
    await service!.exited;
    await startService();
    return { results: (await all).flat(), hit };
  }

  const pendingIn = (channelId: string) => async () =>
    (await db`select 1 from messages where channel_id = ${channelId} and delivery_state = 'pending' limit 1`).length > 0;

  async function channel(slug: string, owner = "user:loader") {
    const res = await fetch(url("/api/messaging/channels"), {
      method: "POST",
      ...json(owner, { slug, name: slug, microdao_id: "microdao:daarion", visibility: "public" }),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; matrix_room_id: string };
  }

  /** Until no message of the channel is pending (the outbox finished what the kill left), bounded. */
  async function settled(channelId: string) {
    const settleBy = Date.now() + 180_000;
    for (;;) {
      const [row] = await db`select count(*)::int as n from messages where channel_id = ${channelId} and delivery_state = 'pending'`;
      if (row!.n === 0 || Date.now() > settleBy) return;
      await Bun.sleep(500); // polling the outcome of a fault, bounded
    }
  }

  /** The texts sent must each be in the index and in the room exactly once, under the ids the clients were answered with. */
  async function expectMessagesOnce(name: string, channelId: string, roomId: string, sent: Array<{ id: string; text: string }>) {
    await settled(channelId);
    const rows = await db<{ id: string; content_preview: string; delivery_state: string }[]>`
      select id, content_preview, delivery_state from messages where channel_id = ${channelId}`;
    const texts = sent.map((s) => s.text);
    const index = tally(texts, rows.map((r) => r.content_preview));
    const matrix = tally(texts, await matrixBodies(roomId));
    figures.push(
      `${name.padEnd(14)} answered ${sent.length}/${CLIENTS * PER_CLIENT}` +
        ` | matrix ${matrix.count} (missing ${matrix.missing}, dup ${matrix.duplicated})` +
        ` | indexed ${index.count} (missing ${index.missing}, dup ${index.duplicated})`,
    );
    console.log(figures.at(-1));
    expect([matrix.missing, matrix.duplicated, index.missing, index.duplicated]).toEqual([0, 0, 0, 0]);
    expect(rows.map((r) => r.id).sort()).toEqual(sent.map((s) => s.id).sort());
    expect(rows.every((r) => r.delivery_state === "sent")).toBe(true);
  }

  test("kill -9 while an agent posts, each post retried with its key: every post once", async () => {
    const target = await channel(`kill-agent-${run}`);
    const invited = await fetch(url(`/api/messaging/channels/${target.id}/members`), { method: "POST", ...json("user:loader", { member_id: "agent:faulter" }) });
    expect(invited.status).toBe(201);
    const { results: sent, hit } = await underKill(pendingIn(target.id), async (c, i) => {
      const text = `agent c${c} m${i}`;
      const answer = await postReliably("/internal/agents/faulter/post-to-channel", `agent-${run}-${c}-${i}`, () => json(null, { channel_id: target.id, text }), [200, 202]);
      return { id: answer.message_id as string, text };
    });
    expect(hit).toBe(true);
    await expectMessagesOnce("agent posts", target.id, target.matrix_room_id, sent);
  });

  test("kill -9 while files are uploaded, each upload retried with its key: every file once", async () => {
    const target = await channel(`kill-upload-${run}`);
    const { results: sent, hit } = await underKill(pendingIn(target.id), async (c, i) => {
      const text = `upload c${c} m${i}`;
      const form = () => {
        const body = new FormData();
        body.append("file", new File([`contents of ${text}`], `f-${c}-${i}.txt`, { type: "text/plain" }));
        body.append("text", text);
        return { headers: { "x-user-id": "user:loader" }, body };
      };
      const answer = await postReliably(`/api/messaging/channels/${target.id}/files`, `upload-${run}-${c}-${i}`, form, [201, 202]);
      return { id: answer.id as string, text };
    });
    expect(hit).toBe(true);
    await expectMessagesOnce("uploads", target.id, target.matrix_room_id, sent);
  });

  test("kill -9 while channels are created, each creation retried with its key: every channel and room once", async () => {
    const creator = `user:creator-${run}`;
    // A creation's claim is running for as long as it is: mostly while Synapse makes the room.
    const creating = async () => (await db`select 1 from idempotency_keys where state = 'running' and scope like '% /api/messaging/channels %' limit 1`).length > 0;
    const { results: made, hit } = await underKill(creating, async (c, i) => {
      const slug = `kill-create-${run}-${c}-${i}`;
      const answer = await postReliably("/api/messaging/channels", `create-${slug}`, () => json(creator, { slug, name: slug, microdao_id: "microdao:daarion", visibility: "public" }), [201]);
      return { slug, id: answer.id as string, room: answer.matrix_room_id as string };
    });
    expect(hit).toBe(true);
    const rows = await db<{ id: string; slug: string; matrix_room_id: string; matrix_alias: string }[]>`
      select id, slug, matrix_room_id, matrix_alias from channels where created_by = ${creator}`;
    const index = tally(made.map((m) => m.slug), rows.map((r) => r.slug));
    const [left] = await db`select count(*)::int as n from channel_creations`;
    // In Matrix: each alias names its channel's room, and the creator is in no other room (no orphan, no double).
    const { url: hs, asToken } = synapse!;
    const matrixCreator = toMatrixUserId(creator, synapse!.serverName);
    const joined = (await (await fetch(`${hs}/_matrix/client/v3/joined_rooms?user_id=${encodeURIComponent(matrixCreator)}`, { headers: { authorization: `Bearer ${asToken}` } })).json()) as { joined_rooms: string[] };
    const aliasRooms: string[] = [];
    for (const row of rows) {
      const res = await fetch(`${hs}/_matrix/client/v3/directory/room/${encodeURIComponent(row.matrix_alias)}`, { headers: { authorization: `Bearer ${asToken}` } });
      if (res.ok && ((await res.json()) as { room_id: string }).room_id === row.matrix_room_id) aliasRooms.push(row.slug);
    }
    const matrix = tally(made.map((m) => m.slug), aliasRooms);
    const strayRooms = joined.joined_rooms.filter((room) => !rows.some((r) => r.matrix_room_id === room)).length;
    figures.push(
      `${"channels".padEnd(14)} answered ${made.length}/${CLIENTS * PER_CLIENT}` +
        ` | matrix ${matrix.count} (missing ${matrix.missing}, stray rooms ${strayRooms})` +
        ` | indexed ${index.count} (missing ${index.missing}, dup ${index.duplicated}) | unfinished creations ${left!.n}`,
    );
    console.log(figures.at(-1));
    expect([matrix.missing, strayRooms, index.missing, index.duplicated, left!.n]).toEqual([0, 0, 0, 0, 0]);
    // Every client was answered with the channel that exists.
    expect(rows.map((r) => `${r.id} ${r.matrix_room_id}`).sort()).toEqual(made.map((m) => `${m.id} ${m.room}`).sort());
  });
});
