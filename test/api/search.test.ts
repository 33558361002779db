import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { RANKED_MATCHES } from "../../src/store/search.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const post = async (channelId: string, as: string, json: Record<string, unknown>) => {
  const res = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json });
  if (res.status !== 201) throw new Error(`send: ${res.status} ${await res.text()}`);
  return res.json();
};
const search = (as: string | undefined, query: string) => server.api(`/api/messaging/search?${query}`, as ? { as } : {});
const ids = (hits: Array<{ id: string }>) => hits.map((h) => h.id);
// Every test searches for a word of its own, so the suites' channels do not mix.
const word = () => `w${crypto.randomUUID().replaceAll("-", "").slice(0, 10)}`;

describe("search (local backend)", () => {
  test("finds words in any language, case-insensitively, best match first, as message views with a rank", async () => {
    const channel = await createChannel(server, "user:admin");
    const w = word();
    const once = await post(channel.id, "user:admin", { text: `Привет ${w} мир` });
    const twice = await post(channel.id, "user:alice", { text: `${w.toUpperCase()} and ${w} again` });
    await post(channel.id, "user:admin", { text: "nothing to see" });
    const res = await search("user:alice", `q=${w}`);
    expect(res.status).toBe(200);
    const hits = await res.json();
    expect(ids(hits)).toEqual([twice.id, once.id]);
    expect(hits[0]).toMatchObject({ channel_id: channel.id, sender_id: "user:alice", content_preview: `${w.toUpperCase()} and ${w} again`, status: "sent", reply_count: 0 });
    expect(hits[0].rank).toBeGreaterThan(hits[1].rank);
    // Cyrillic words are words too ('simple' config: no stemming, no stop words).
    expect(ids(await (await search("user:alice", `q=${encodeURIComponent(`привет ${w}`)}`)).json())).toEqual([once.id]);
    // Web-search syntax: a phrase, and an excluded word.
    expect(ids(await (await search("user:alice", `q=${encodeURIComponent(`"and ${w}"`)}`)).json())).toEqual([twice.id]);
    expect(ids(await (await search("user:alice", `q=${encodeURIComponent(`${w} -again`)}`)).json())).toEqual([once.id]);
  });

  test("only readable channels: public ones and those where the caller is a current member with can_read", async () => {
    const w = word();
    const pub = await createChannel(server, "user:admin", { visibility: "public" });
    const priv = await createChannel(server, "user:admin", { visibility: "private" });
    const inPublic = await post(pub.id, "user:admin", { text: `public ${w}` });
    const inPrivate = await post(priv.id, "user:admin", { text: `secret ${w}` });
    expect(ids(await (await search("user:eve", `q=${w}`)).json())).toEqual([inPublic.id]);
    expect(ids(await (await search("user:admin", `q=${w}`)).json()).sort()).toEqual([inPublic.id, inPrivate.id].sort());

    // A member without can_read sees nothing of the channel; with it, everything.
    await server.api(`/api/messaging/channels/${priv.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:mute", role: "member", can_read: false } });
    expect(ids(await (await search("user:mute", `q=${w}`)).json())).toEqual([inPublic.id]);
    await server.api(`/api/messaging/channels/${priv.id}/members`, { method: "POST", as: "user:admin", json: { member_id: "user:carol", role: "member" } });
    expect(ids(await (await search("user:carol", `q=${w}`)).json()).sort()).toEqual([inPublic.id, inPrivate.id].sort());
    // A member who left is no longer a reader.
    await server.app.deps.sql`update channel_members set left_at = now() where channel_id = ${priv.id} and member_id = 'user:carol'`;
    expect(ids(await (await search("user:carol", `q=${w}`)).json())).toEqual([inPublic.id]);

    // Naming a hidden channel is a 404, as everywhere.
    const hidden = await search("user:eve", `q=${w}&channel_id=${priv.id}`);
    expect(hidden.status).toBe(404);
    expect(await hidden.json()).toMatchObject({ error: "NOT_FOUND" });
  });

  test("channel_id and sender_id filter; thread replies are found; deleted and failed messages are not", async () => {
    const w = word();
    const a = await createChannel(server, "user:admin");
    const b = await createChannel(server, "user:admin");
    const root = await post(a.id, "user:admin", { text: `root ${w}` });
    const reply = await post(a.id, "user:bob", { text: `reply ${w}`, thread_id: root.id });
    const other = await post(b.id, "user:bob", { text: `elsewhere ${w}` });
    const gone = await post(a.id, "user:admin", { text: `deleted ${w}` });
    const failed = await post(a.id, "user:admin", { text: `failed ${w}` });
    await server.app.deps.sql`update messages set deleted_at = now() where id = ${gone.id}`;
    await server.app.deps.sql`update messages set delivery_state = 'failed' where id = ${failed.id}`;

    expect(ids(await (await search("user:x", `q=${w}&channel_id=${a.id}`)).json()).sort()).toEqual([root.id, reply.id].sort());
    const bySender = await (await search("user:x", `q=${w}&sender_id=user:bob`)).json();
    expect(ids(bySender).sort()).toEqual([reply.id, other.id].sort());
    expect(bySender.find((h: { id: string }) => h.id === reply.id)).toMatchObject({ thread_id: root.id });
    expect(ids(await (await search("user:x", `q=${w}&channel_id=${b.id}&sender_id=user:bob`)).json())).toEqual([other.id]);
    const rootHit = (await (await search("user:x", `q=root ${w}`)).json())[0];
    expect(rootHit).toMatchObject({ id: root.id, reply_count: 1 });
  });

  test("pages by offset with X-Next-Offset, without repeats or gaps", async () => {
    const w = word();
    const channel = await createChannel(server, "user:admin");
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) sent.push((await post(channel.id, "user:admin", { text: `page ${w} ${i}` })).id);
    const first = await search("user:admin", `q=${w}&limit=2`);
    expect(first.headers.get("x-next-offset")).toBe("2");
    const second = await search("user:admin", `q=${w}&limit=2&offset=2`);
    expect(second.headers.get("x-next-offset")).toBe("4");
    const third = await search("user:admin", `q=${w}&limit=2&offset=4`);
    expect(third.headers.get("x-next-offset")).toBeNull();
    const all = [...(await first.json()), ...(await second.json()), ...(await third.json())];
    expect(ids(all).sort()).toEqual([...sent].sort());
    // Equal ranks: newest first.
    expect(ids(all)).toEqual([...sent].reverse());
  });

  test("ranks only the newest RANKED_MATCHES matches; pages end there; a narrower query finds an older best match", async () => {
    const w = word();
    const channel = await createChannel(server, "user:admin");
    const best = await post(channel.id, "user:admin", { text: `${w} ${w} ${w}` });
    // RANKED_MATCHES newer matches, each with the word once, indexed in bulk (seq 2…).
    await server.app.deps.sql`
      insert into messages (channel_id, seq, matrix_event_id, matrix_type, sender_id, sender_type, sender_matrix_id,
                            content_preview, delivery_state, created_at)
      select ${channel.id}, 1 + i, ${`$${w}-`} || i, 'm.room.message', 'user:admin', 'human', '@user-admin:daarion.city',
             'plain ' || ${w} || ' ' || i, 'sent', ${best.created_at}::timestamptz + make_interval(secs => i)
      from generate_series(1, ${RANKED_MATCHES}::int) as i`;
    const previews = (hits: Array<{ content_preview: string }>) => hits.map((h) => h.content_preview);

    const first = await search("user:admin", `q=${w}&channel_id=${channel.id}&limit=3`);
    // The old message matches best but is not among the newest RANKED_MATCHES: equal ranks, newest first.
    expect(previews(await first.json())).toEqual([`plain ${w} ${RANKED_MATCHES}`, `plain ${w} ${RANKED_MATCHES - 1}`, `plain ${w} ${RANKED_MATCHES - 2}`]);
    expect(first.headers.get("x-next-offset")).toBe("3");
    // The same across every readable channel (the word is this test's own).
    const across = await search("user:admin", `q=${w}&limit=3`);
    expect(previews(await across.json())).toEqual([`plain ${w} ${RANKED_MATCHES}`, `plain ${w} ${RANKED_MATCHES - 1}`, `plain ${w} ${RANKED_MATCHES - 2}`]);
    const acrossPast = await search("user:admin", `q=${w}&offset=${RANKED_MATCHES}`);
    expect(await acrossPast.json()).toEqual([]);

    const last = await search("user:admin", `q=${w}&channel_id=${channel.id}&limit=20&offset=${RANKED_MATCHES - 20}`);
    expect(previews(await last.json())).toEqual(Array.from({ length: 20 }, (_, i) => `plain ${w} ${20 - i}`));
    expect(last.headers.get("x-next-offset")).toBeNull();
    const past = await search("user:admin", `q=${w}&channel_id=${channel.id}&offset=${RANKED_MATCHES}`);
    expect(past.status).toBe(200);
    expect(await past.json()).toEqual([]);
    expect(past.headers.get("x-next-offset")).toBeNull();

    expect(ids(await (await search("user:admin", `q=${encodeURIComponent(`"${w} ${w}"`)}`)).json())).toEqual([best.id]);
  });

  test("bad input: no identity 401, missing or empty q, bad ids and unknown parameters 400; punctuation alone finds nothing", async () => {
    expect((await search(undefined, "q=x")).status).toBe(401);
    for (const query of ["", "q=", "q=x&channel_id=nope", "q=x&limit=0", "q=x&limit=101", "q=x&offset=-1", "q=x&color=red"]) {
      const res = await search("user:alice", query);
      expect(res.status).toBe(400);
      expect((await res.json()).error).toBe("VALIDATION_FAILED");
    }
    const unknown = await search("user:alice", `q=x&channel_id=${crypto.randomUUID()}`);
    expect(unknown.status).toBe(404);
    const punct = await search("user:alice", `q=${encodeURIComponent("!!! &&")}`);
    expect(punct.status).toBe(200);
    expect(await punct.json()).toEqual([]);
  });

  test("uses the GIN index", async () => {
    const sql = server.app.deps.sql;
    const plan = await sql.begin(async (tx) => {
      await tx`set local enable_seqscan = off`;
      return tx.unsafe(`explain select id from messages where search_vector @@ websearch_to_tsquery('simple', 'hello')`);
    });
    expect(JSON.stringify(plan)).toContain("messages_search_idx");
  });
});
