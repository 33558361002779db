import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, uniqueSlug, type ApiResponse, type TestServer } from "../helpers/server.ts";

setDefaultTimeout(30_000);

/**
 * Every endpoint the server documents, tried as an outsider, as a member without the right it
 * needs and as a member with it, on public, microdao and private channels. The table is checked
 * against /docs/json, so a new endpoint without an entry here fails this suite.
 */

/** The one place that says how a caller proves who they are (X-User-Id until JWT lands). */
const identify = (who: string): Record<string, string> => ({ "x-user-id": who });

type Visibility = "public" | "microdao" | "private";
type Right = "read" | "write" | "invite" | "kick" | "admin";
const VISIBILITIES: Visibility[] = ["public", "microdao", "private"];

const OWNER = "user:owner";
const OUTSIDER = "user:outsider";
/** A member with can_read false. */
const BLIND = "user:blind";
/** A member who may read and nothing else. */
const READER = "user:reader";
/** A plain member (role member) with every capability. */
const WRITER = "user:writer";
/** A plain member that kicks and role changes are aimed at. */
const TARGET = "user:target";
const AGENT_READER = "agent:reader";
const AGENT_WRITER = "agent:writer";

interface Fixture {
  id: string;
  visibility: Visibility;
  /** A message sent by the owner. */
  message: string;
}
interface Call {
  method: string;
  path: string;
  json?: unknown;
  body?: RequestInit["body"];
}
interface Entry {
  right: Right;
  /** The status of a success. */
  ok: number;
  /** What an outsider gets on a public channel when it is not simply `ok` (a user's first write joins). */
  outsiderOnPublic?: number;
  actors?: { outsider: string; without: string; with: string };
  /** Runs once per channel, before the three callers; its result reaches call(). */
  setup?: (f: Fixture) => Promise<unknown>;
  call: (f: Fixture, who: string, state: any) => Call | Promise<Call>;
}
/** Endpoints outside the channel access rules, with the reason; they are checked for existence only. */
interface Exempt {
  exempt: string;
}

let server: TestServer;

function request(who: string | null, call: Call): Promise<ApiResponse> {
  const headers: Record<string, string> = who ? identify(who) : {};
  let body = call.body;
  if (call.json !== undefined) {
    headers["content-type"] = "application/json";
    body = JSON.stringify(call.json);
  }
  return server.api(call.path, { method: call.method, headers, body });
}

async function must(who: string, call: Call, status: number): Promise<any> {
  const res = await request(who, call);
  const text = await res.text();
  if (res.status !== status) throw new Error(`${call.method} ${call.path} as ${who}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

const ch = (f: Fixture, rest = "") => `/api/messaging/channels/${f.id}${rest}`;
const send = async (f: Fixture, who: string, text = "hello") => (await must(who, { method: "POST", path: ch(f, "/messages"), json: { text } }, 201)).id as string;
const upload = (f: Fixture) => {
  const form = new FormData();
  form.append("file", new File([new Uint8Array([1, 2, 3])], "a.png", { type: "image/png" }));
  return form;
};

/**
 * A message with a link preview and its image, with no page server: the owner's Matrix account
 * sends it with an MSC4095 bundled preview (as a Matrix client would), whose image is in the
 * media repository. Resolves with its message id once it is indexed.
 */
async function bundledPreview(f: Fixture): Promise<string> {
  const { matrix, sql } = server.app.deps;
  const room = (await must(OWNER, { method: "GET", path: ch(f) }, 200)).matrix_room_id as string;
  const owner = `@user-owner:${matrix.serverName}`;
  const { contentUri } = await matrix.uploadMedia(owner, new Uint8Array([0x89, 0x50, 0x4e, 0x47]), "image/png", null);
  const preview = { matched_url: "https://example.org/", "og:title": "A page", "og:image": contentUri };
  const content = { msgtype: "m.text", body: "https://example.org/", "com.beeper.linkpreviews": [preview] };
  const { eventId } = await matrix.sendEvent(room, owner, "m.room.message", content, crypto.randomUUID());
  const deadline = Date.now() + 10_000;
  for (;;) {
    const [row] = await sql`select id from messages where matrix_event_id = ${eventId}`;
    if (row) return row.id as string;
    if (Date.now() > deadline) throw new Error("the bundled preview message was not indexed");
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function fixture(visibility: Visibility): Promise<Fixture> {
  const channel = await createChannel(server, OWNER, { visibility });
  const invite = (member_id: string, rights: Record<string, boolean>) =>
    must(OWNER, { method: "POST", path: `/api/messaging/channels/${channel.id}/members`, json: { member_id, ...rights } }, 201);
  const none = { can_write: false, can_invite: false, can_kick: false };
  await invite(BLIND, { can_read: false, ...none });
  await invite(READER, { can_read: true, ...none });
  await invite(WRITER, { can_read: true, can_write: true, can_invite: true, can_kick: true });
  await invite(TARGET, { can_read: true });
  await invite(AGENT_READER, { can_read: true, ...none });
  await invite(AGENT_WRITER, { can_read: true, can_write: true });
  const f: Fixture = { id: channel.id, visibility, message: "" };
  f.message = await send(f, OWNER);
  return f;
}

let fresh = 0;
const TABLE: Record<string, Entry | Exempt> = {
  "GET /health": { exempt: "liveness, no caller" },
  "GET /ready": { exempt: "readiness, no caller" },
  "GET /api/messaging/channels": { exempt: "the list itself: checked in its own test below" },
  "POST /api/messaging/channels": { exempt: "any identified caller may create a channel: checked in its own test below" },
  "GET /api/messaging/channels/{id}": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f) }) },
  "PATCH /api/messaging/channels/{id}": { right: "admin", ok: 200, call: (f) => ({ method: "PATCH", path: ch(f), json: { name: "Renamed" } }) },
  "DELETE /api/messaging/channels/{id}": { right: "admin", ok: 200, call: (f) => ({ method: "DELETE", path: ch(f) }) },
  "GET /api/messaging/channels/{id}/messages": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, "/messages") }) },
  "POST /api/messaging/channels/{id}/messages": { right: "write", ok: 201, call: (f) => ({ method: "POST", path: ch(f, "/messages"), json: { text: "hi" } }) },
  "GET /api/messaging/channels/{id}/messages/{message_id}": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, `/messages/${f.message}`) }) },
  "PATCH /api/messaging/channels/{id}/messages/{message_id}": {
    right: "write",
    ok: 200,
    outsiderOnPublic: 403,
    setup: (f) => send(f, WRITER, "mine"),
    call: (f, _who, mine: string) => ({ method: "PATCH", path: ch(f, `/messages/${mine}`), json: { text: "edited" } }),
  },
  "DELETE /api/messaging/channels/{id}/messages/{message_id}": {
    right: "kick",
    ok: 200,
    call: (f) => ({ method: "DELETE", path: ch(f, `/messages/${f.message}`) }),
  },
  "GET /api/messaging/channels/{id}/messages/{message_id}/thread": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, `/messages/${f.message}/thread`) }) },
  "GET /api/messaging/channels/{id}/messages/{message_id}/edits": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, `/messages/${f.message}/edits`) }) },
  "POST /api/messaging/channels/{id}/messages/{message_id}/reactions": {
    right: "write",
    ok: 200,
    call: (f) => ({ method: "POST", path: ch(f, `/messages/${f.message}/reactions`), json: { emoji: "👍" } }),
  },
  "DELETE /api/messaging/channels/{id}/messages/{message_id}/reactions": {
    right: "write",
    ok: 200,
    outsiderOnPublic: 403,
    setup: (f) => must(WRITER, { method: "POST", path: ch(f, `/messages/${f.message}/reactions`), json: { emoji: "👍" } }, 200),
    call: (f) => ({ method: "DELETE", path: ch(f, `/messages/${f.message}/reactions?emoji=${encodeURIComponent("👍")}`) }),
  },
  "GET /api/messaging/channels/{id}/messages/{message_id}/file": {
    right: "read",
    ok: 200,
    setup: async (f) => (await must(OWNER, { method: "POST", path: ch(f, "/files"), body: upload(f) }, 201)).id,
    call: (f, _who, file: string) => ({ method: "GET", path: ch(f, `/messages/${file}/file`) }),
  },
  "GET /api/messaging/channels/{id}/messages/{message_id}/link-preview/image": {
    right: "read",
    ok: 200,
    setup: (f) => bundledPreview(f),
    call: (f, _who, message: string) => ({ method: "GET", path: ch(f, `/messages/${message}/link-preview/image`) }),
  },
  "POST /api/messaging/channels/{id}/files": { right: "write", ok: 201, call: (f) => ({ method: "POST", path: ch(f, "/files"), body: upload(f) }) },
  "GET /api/messaging/channels/{id}/members": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, "/members") }) },
  "POST /api/messaging/channels/{id}/members": {
    right: "invite",
    ok: 201,
    call: (f) => ({ method: "POST", path: ch(f, "/members"), json: { member_id: `user:invitee${fresh++}` } }),
  },
  "PATCH /api/messaging/channels/{id}/members/{member_id}": {
    right: "admin",
    ok: 200,
    call: (f) => ({ method: "PATCH", path: ch(f, `/members/${TARGET}`), json: { can_invite: true } }),
  },
  "DELETE /api/messaging/channels/{id}/members/{member_id}": { right: "kick", ok: 200, call: (f) => ({ method: "DELETE", path: ch(f, `/members/${TARGET}`) }) },
  "GET /api/messaging/channels/{id}/events": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, "/events") }) },
  "GET /api/messaging/channels/{id}/pins": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, "/pins") }) },
  "POST /api/messaging/channels/{id}/pins": {
    right: "write",
    ok: 201,
    outsiderOnPublic: 403,
    call: (f) => ({ method: "POST", path: ch(f, "/pins"), json: { message_id: f.message } }),
  },
  "DELETE /api/messaging/channels/{id}/pins/{message_id}": {
    right: "write",
    ok: 204,
    outsiderOnPublic: 403,
    setup: (f) => must(OWNER, { method: "POST", path: ch(f, "/pins"), json: { message_id: f.message } }, 201),
    call: (f) => ({ method: "DELETE", path: ch(f, `/pins/${f.message}`) }),
  },
  "POST /api/messaging/channels/{id}/typing": { right: "write", ok: 200, outsiderOnPublic: 403, call: (f) => ({ method: "POST", path: ch(f, "/typing"), json: { typing: true } }) },
  "POST /api/messaging/channels/{id}/read": { right: "read", ok: 200, outsiderOnPublic: 403, call: (f) => ({ method: "POST", path: ch(f, "/read"), json: { message_id: f.message } }) },
  "GET /api/messaging/search": {
    right: "read",
    ok: 200,
    call: (f) => ({ method: "GET", path: `/api/messaging/search?q=hello&channel_id=${f.id}` }),
  },
  "GET /api/messaging/channels/{id}/call": { right: "read", ok: 200, call: (f) => ({ method: "GET", path: ch(f, "/call") }) },
  "GET /api/messaging/voip/turn": { exempt: "TURN credentials for the caller's own Matrix user: no channel (test/api/calls.test.ts)" },
  "GET /api/messaging/mentions": {
    right: "read",
    ok: 200,
    call: (f) => ({ method: "GET", path: `/api/messaging/mentions?channel_id=${f.id}` }),
  },
  "POST /internal/agents/{agent_id}/post-to-channel": {
    right: "write",
    ok: 200,
    outsiderOnPublic: 403,
    actors: { outsider: "agent:outsider", without: AGENT_READER, with: AGENT_WRITER },
    call: (f, who) => ({ method: "POST", path: `/internal/agents/${who}/post-to-channel`, json: { channel_id: f.id, text: "from an agent" } }),
  },
  "PATCH /api/messaging/microdaos/{id}/space/channels/{channel_id}": {
    right: "admin",
    ok: 200,
    call: (f) => ({ method: "PATCH", path: `/api/messaging/microdaos/microdao:daarion/space/channels/${f.id}`, json: { order: "0" } }),
  },
  "GET /api/messaging/microdaos/{id}/space": { exempt: "a microDAO's space, not one channel: lists only the channels the caller may read (test/api/spaces.test.ts)" },
  "POST /api/messaging/microdaos/{id}/space": { exempt: "owners and admins of the microDAO's channels (test/api/spaces.test.ts)" },
  "POST /api/messaging/microdaos/{id}/groups": { exempt: "owners and admins of the microDAO's channels (test/api/spaces.test.ts)" },
  "PATCH /api/messaging/microdaos/{id}/groups/{gid}": { exempt: "owners and admins of the microDAO's channels (test/api/spaces.test.ts)" },
  "GET /internal/cluster": { exempt: "operators' view of cluster ownership, behind INTERNAL_SERVICE_TOKEN; names no channel content" },
  "GET /internal/messaging/channels/{id}/context": { exempt: "service-to-service (the agent filter), no caller; not exposed outside the cluster" },
  "WS /ws/messaging/{channel_id}": { right: "read", ok: 101, call: (f) => ({ method: "WS", path: `/ws/messaging/${f.id}` }) },
  "PUT /_matrix/app/v1/transactions/{txnId}": { exempt: "the homeserver's push API, authenticated by hs_token (test/api/appservice.test.ts)" },
  "POST /_matrix/app/v1/ping": { exempt: "the homeserver's application-service API, authenticated by hs_token" },
  "GET /_matrix/app/v1/users/{userId}": { exempt: "the homeserver's application-service API, authenticated by hs_token" },
  "GET /_matrix/app/v1/rooms/{alias}": { exempt: "the homeserver's application-service API, authenticated by hs_token" },
};

const ACTORS: Record<Right, { outsider: string; without: string; with: string }> = {
  read: { outsider: OUTSIDER, without: BLIND, with: READER },
  write: { outsider: OUTSIDER, without: READER, with: WRITER },
  invite: { outsider: OUTSIDER, without: READER, with: WRITER },
  kick: { outsider: OUTSIDER, without: READER, with: WRITER },
  admin: { outsider: OUTSIDER, without: WRITER, with: OWNER },
};

function expected(entry: Entry, visibility: Visibility, as: "outsider" | "without" | "with"): number {
  if (as === "with") return entry.ok;
  const hidden = visibility !== "public";
  if (as === "outsider") {
    if (hidden) return 404;
    if (entry.outsiderOnPublic !== undefined) return entry.outsiderOnPublic;
    return entry.right === "read" || entry.right === "write" ? entry.ok : 403;
  }
  if (entry.right === "read") return hidden ? 404 : entry.ok;
  return 403;
}

/** The WebSocket upgrade: a refusal is an HTTP status before any socket exists; success opens one. */
async function wsStatus(who: string, path: string): Promise<{ status: number; body: string }> {
  const url = server.wsUrl + path;
  const refused = await fetch(server.url + path, {
    headers: { ...identify(who), connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" },
  }).catch(() => null);
  if (refused && refused.status !== 101) return { status: refused.status, body: await refused.text() };
  const status = await new Promise<number>((resolve) => {
    const ws = new WebSocket(url, { headers: identify(who) } as unknown as string[]);
    const timer = setTimeout(() => resolve(0), 5000);
    ws.onopen = () => {
      clearTimeout(timer);
      ws.close();
      resolve(101);
    };
    ws.onerror = () => {
      clearTimeout(timer);
      resolve(-1);
    };
  });
  return { status, body: "" };
}

async function statusOf(who: string, call: Call): Promise<{ status: number; body: string }> {
  if (call.method === "WS") return wsStatus(who, call.path);
  const res = await request(who, call);
  return { status: res.status, body: await res.text() };
}

const documented = async (): Promise<string[]> => {
  const doc = (await (await fetch(server.url + "/docs/json")).json()) as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.replace(/(.)\/$/, "$1")}`));
};

describe("authorization on every endpoint (local backend)", () => {
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("every documented endpoint has a row in the table, and every row names a documented endpoint", async () => {
    const docs = await documented();
    expect(docs.filter((k) => !(k in TABLE))).toEqual([]);
    expect(Object.keys(TABLE).filter((k) => !k.startsWith("WS ") && !docs.includes(k))).toEqual([]);
  });

  for (const [key, entry] of Object.entries(TABLE)) {
    if ("exempt" in entry) continue;
    for (const visibility of VISIBILITIES) {
      test(`${key} on a ${visibility} channel: outsider, member without ${entry.right}, member with it`, async () => {
        const f = await fixture(visibility);
        const state = await entry.setup?.(f);
        const actors = entry.actors ?? ACTORS[entry.right];
        const seen: string[] = [];
        const wanted: string[] = [];
        const hiddenBodies: string[] = [];
        for (const as of ["outsider", "without", "with"] as const) {
          const { status, body } = await statusOf(actors[as], await entry.call(f, actors[as], state));
          const want = expected(entry, visibility, as);
          wanted.push(`${as}=${want}`);
          seen.push(`${as}=${status}${status === want ? "" : ` ${body.slice(0, 160)}`}`);
          if (want === 404 && status === 404) hiddenBodies.push(body);
        }
        expect(seen).toEqual(wanted);
        // A hidden channel answers exactly as a channel that does not exist.
        for (const body of hiddenBodies) expect(JSON.parse(body)).toEqual({ error: "NOT_FOUND", message: "channel not found", request_id: expect.any(String) });
      });
    }
  }

  test("the channel list shows public channels to everyone and the others only to members who may read", async () => {
    const chans = Object.fromEntries(await Promise.all(VISIBILITIES.map(async (v) => [v, (await fixture(v)).id] as const)));
    const listed = async (who: string) => {
      const rows = await must(who, { method: "GET", path: "/api/messaging/channels" }, 200);
      return VISIBILITIES.filter((v) => rows.some((r: { id: string }) => r.id === chans[v]));
    };
    expect(await listed(OUTSIDER)).toEqual(["public"]);
    expect(await listed(BLIND)).toEqual(["public"]);
    expect(await listed(READER)).toEqual(VISIBILITIES);
  });

  test("creating a channel needs an identity and nothing else", async () => {
    const create = { method: "POST", path: "/api/messaging/channels", json: { slug: uniqueSlug(), name: "Mine", microdao_id: "microdao:daarion" } };
    expect((await request(null, create)).status).toBe(401);
    expect((await request(OUTSIDER, create)).status).toBe(201);
  });

  test("search without a channel finds nothing the caller may not read", async () => {
    const hidden = await fixture("private");
    await send(hidden, OWNER, "needle-private");
    const hits = async (who: string) => (await must(who, { method: "GET", path: "/api/messaging/search?q=needle-private" }, 200)) as unknown[];
    expect(await hits(OUTSIDER)).toHaveLength(0);
    expect(await hits(BLIND)).toHaveLength(0);
    expect((await hits(READER)).length).toBeGreaterThan(0);
  });
});
