import { afterAll, beforeAll, describe, expect, setDefaultTimeout, spyOn, test } from "bun:test";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT } from "jose";
import { createChannel, startTestServer, type ApiResponse, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { hsToken, JWT_TEST, jwtTestEnv } from "../helpers/jwt.ts";
import { freePort, LineWatcher, terminate } from "../helpers/process.ts";
import * as secrets from "../../src/http/auth/secrets.ts";
import { READ_REVOKED_CLOSE_CODE } from "../../src/realtime/sockets.ts";
import { TOKEN_EXPIRED_CLOSE_CODE } from "../../src/realtime/expiry.ts";

setDefaultTimeout(30_000);

const MAIN = join(import.meta.dir, "..", "..", "src", "main.ts");
const channels = "/api/messaging/channels";

/** A request with exactly the headers given (no helper identity). */
const raw = (server: TestServer, path: string, headers: Record<string, string> = {}): Promise<ApiResponse> => fetch(server.url + path, { headers });
const bearer = async (sub: string, o?: Parameters<typeof hsToken>[1]) => ({ authorization: `Bearer ${await hsToken(sub, o)}` });

async function expectUnauthenticated(res: ApiResponse) {
  expect(res.status).toBe(401);
  expect(res.headers.get("www-authenticate")).toStartWith("Bearer");
  expect((await res.json()).error).toBe("UNAUTHENTICATED");
}

describe("JWT bearer authentication (HS256)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer(jwtTestEnv(), { token: (sub) => hsToken(sub) });
  }, 60_000);
  afterAll(() => server?.stop(), 60_000);

  test("a valid token's sub is the caller", async () => {
    const ch = await createChannel(server, "user:ada");
    const res = await raw(server, `${channels}/${ch.id}`, await bearer("user:ada"));
    expect(res.status).toBe(200);
    expect((await res.json()).created_by).toBe("user:ada");
  });

  test("no token, or X-User-Id alone, is 401 with WWW-Authenticate: Bearer", async () => {
    await expectUnauthenticated(await raw(server, channels));
    await expectUnauthenticated(await raw(server, channels, { "x-user-id": "user:ada" }));
    await expectUnauthenticated(await raw(server, channels, { authorization: "Basic dXNlcjpwdw==" }));
  });

  test("with a token, X-User-Id is ignored: the token says who writes", async () => {
    const ch = await createChannel(server, "user:ben");
    const res = await fetch(`${server.url}${channels}/${ch.id}/messages`, {
      method: "POST",
      headers: { ...(await bearer("user:ben")), "x-user-id": "user:mallory", "content-type": "application/json" },
      body: JSON.stringify({ text: "hello" }),
    });
    expect(res.status).toBe(201);
    expect(((await res.json()) as { sender_id: string }).sender_id).toBe("user:ben");
  });

  test("wrong issuer, wrong audience, expired, bad signature, bad sub or bad claim: 401", async () => {
    const refused = [
      await hsToken("user:ada", { issuer: "https://evil.test" }),
      await hsToken("user:ada", { audience: "someone-else" }),
      await hsToken("user:ada", { expiresIn: -120 }),
      await hsToken("user:ada", { notBefore: 120 }),
      await hsToken("user:ada", { secret: "another-secret-0123456789abcdefghijklmnop" }),
      await hsToken("bob", {}),
      await hsToken("user:ada", { microdaos: ["not-a-microdao"] }),
      "not.a.jwt",
    ];
    for (const token of refused) {
      const res = await raw(server, channels, { authorization: `Bearer ${token}` });
      expect(res.headers.get("www-authenticate")).toContain('error="invalid_token"');
      await expectUnauthenticated(res);
    }
  });

  test("an unsigned token (alg none) is refused", async () => {
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString("base64url");
    const now = Math.floor(Date.now() / 1000);
    const none = `${b64({ alg: "none" })}.${b64({ sub: "user:ada", iss: JWT_TEST.issuer, aud: JWT_TEST.audience, exp: now + 60 })}.`;
    await expectUnauthenticated(await raw(server, channels, { authorization: `Bearer ${none}` }));
  });

  test("clock skew: 30 s by default, either side", async () => {
    expect((await raw(server, channels, await bearer("user:ada", { expiresIn: -10 }))).status).toBe(200);
    expect((await raw(server, channels, await bearer("user:ada", { notBefore: 10 }))).status).toBe(200);
    await expectUnauthenticated(await raw(server, channels, await bearer("user:ada", { expiresIn: -45 })));
  });

  test("the microdaos claim opens that microDAO's microdao channels: read, listed, and a user's first write joins", async () => {
    const ch = await createChannel(server, "user:owner1", { visibility: "microdao", microdao_id: "microdao:daarion" });
    const secret = await createChannel(server, "user:owner1", { visibility: "private", microdao_id: "microdao:daarion" });
    const member = await bearer("user:cleo", { microdaos: ["microdao:daarion"] });
    const outsider = await bearer("user:cleo", { microdaos: ["microdao:other"] });

    expect((await raw(server, `${channels}/${ch.id}`, outsider)).status).toBe(404);
    expect((await raw(server, `${channels}/${ch.id}/messages`, outsider)).status).toBe(404);
    const outsiderList = (await (await raw(server, channels, outsider)).json()) as Array<{ id: string }>;
    expect(outsiderList.map((c) => c.id)).not.toContain(ch.id);

    expect((await raw(server, `${channels}/${ch.id}`, member)).status).toBe(200);
    expect((await raw(server, `${channels}/${ch.id}/messages`, member)).status).toBe(200);
    const listed = (await (await raw(server, channels, member)).json()) as Array<{ id: string }>;
    expect(listed.map((c) => c.id)).toContain(ch.id);
    expect(listed.map((c) => c.id)).not.toContain(secret.id);
    expect((await raw(server, `${channels}/${secret.id}`, member)).status).toBe(404);

    const sent = await fetch(`${server.url}${channels}/${ch.id}/messages`, {
      method: "POST",
      headers: { ...member, "content-type": "application/json" },
      body: JSON.stringify({ text: "hi, microDAO" }),
    });
    expect(sent.status).toBe(201);
    const members = (await (await server.api(`${channels}/${ch.id}/members`, { as: "user:owner1" })).json()) as Array<{ member_id: string }>;
    expect(members.map((m) => m.member_id)).toContain("user:cleo");
  });

  test("WebSocket: the token in the bearer subprotocol (echoed back) or in ?access_token=", async () => {
    const ch = await createChannel(server, "user:dora");
    const token = await hsToken("user:dora");
    const viaProtocol = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", token]));
    await viaProtocol.opened;
    expect(viaProtocol.ws.protocol).toBe("bearer");
    const viaQuery = await WsInbox.open(`${server.wsUrl}/ws/messaging/${ch.id}?access_token=${encodeURIComponent(token)}`);
    await server.api(`${channels}/${ch.id}/messages`, { method: "POST", as: "user:dora", json: { text: "live" } });
    for (const inbox of [viaProtocol, viaQuery]) {
      const frame = await inbox.nextJson();
      expect(frame).toMatchObject({ type: "message.created", message: { content_preview: "live", sender_id: "user:dora" } });
      inbox.close();
    }
  });

  test("WebSocket: no token, X-User-Id or ?user_id= alone, or a bad token: the upgrade is refused with 401", async () => {
    const ch = await createChannel(server, "user:dora");
    const url = `${server.url}/ws/messaging/${ch.id}`;
    const upgrade = { connection: "Upgrade", upgrade: "websocket", "sec-websocket-version": "13", "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==" };
    for (const [suffix, extra] of [
      ["", {}],
      ["", { "x-user-id": "user:dora" }],
      ["?user_id=user:dora", {}],
      ["?access_token=forged", {}],
      ["", { "sec-websocket-protocol": `bearer, ${await hsToken("user:dora", { expiresIn: -120 })}` }],
    ] as const) {
      const res = await fetch(url + suffix, { headers: { ...upgrade, ...extra } });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe("UNAUTHENTICATED");
    }
  });

  test(`a kicked member's socket gets member.left, then is closed with ${READ_REVOKED_CLOSE_CODE}`, async () => {
    const ch = await createChannel(server, "user:owner2", { visibility: "private" });
    const invited = await server.api(`${channels}/${ch.id}/members`, { method: "POST", as: "user:owner2", json: { member_id: "user:eve" } });
    expect(invited.status).toBe(201);
    const eve = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:eve")]));
    await eve.opened;
    const owner = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:owner2")]));
    await owner.opened;

    const kicked = await server.api(`${channels}/${ch.id}/members/user:eve`, { method: "DELETE", as: "user:owner2" });
    expect(kicked.status).toBe(200);
    expect(await eve.nextJson()).toMatchObject({ type: "member.left", member: { member_id: "user:eve" }, kicked_by: "user:owner2" });
    expect(await eve.closed).toMatchObject({ code: READ_REVOKED_CLOSE_CODE });

    // The others stay connected and keep receiving.
    expect(await owner.nextJson()).toMatchObject({ type: "member.left" });
    await server.api(`${channels}/${ch.id}/messages`, { method: "POST", as: "user:owner2", json: { text: "after the kick" } });
    expect(await owner.nextJson()).toMatchObject({ type: "message.created", message: { content_preview: "after the kick" } });
    expect(eve.pending).toHaveLength(0);
    owner.close();

    // And the kicked member cannot come back.
    const again = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:eve")]));
    await expect(again.opened).rejects.toThrow();
  });

  test(`a socket is closed with ${TOKEN_EXPIRED_CLOSE_CODE} when its token expires; one with a fresh token stays`, async () => {
    const ch = await createChannel(server, "user:owner4");
    // Expired 28 s ago, inside the 30 s clock skew: accepted for about 2 s more.
    const expiring = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:owner4", { expiresIn: -28 })]));
    const fresh = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:owner4")]));
    await Promise.all([expiring.opened, fresh.opened]);
    const opened = Date.now();
    expect(await expiring.closed).toMatchObject({ code: TOKEN_EXPIRED_CLOSE_CODE, reason: "token expired" });
    expect(Date.now() - opened).toBeLessThan(4000);
    const sent = await server.api(`${channels}/${ch.id}/messages`, { method: "POST", as: "user:owner4", json: { text: "still here" } });
    expect(sent.status).toBe(201);
    expect(await fresh.nextJson()).toMatchObject({ type: "message.created", message: { content_preview: "still here" } });
    fresh.close();
  });

  test(`a public channel made microdao, then private, closes the sockets of those who may no longer read it (${READ_REVOKED_CLOSE_CODE})`, async () => {
    const ch = await createChannel(server, "user:owner5", { visibility: "public", microdao_id: "microdao:alpha" });
    const open = async (sub: string, microdaos?: string[]) => {
      const inbox = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken(sub, { microdaos })]));
      await inbox.opened;
      return inbox;
    };
    const owner = await open("user:owner5");
    const outsider = await open("user:gil");
    const fromAlpha = await open("user:hal", ["microdao:alpha"]);
    const patch = (visibility: string) =>
      server.api(`${channels}/${ch.id}`, { method: "PATCH", as: "user:owner5", json: { visibility } });

    expect((await patch("microdao")).status).toBe(200);
    expect(await outsider.closed).toMatchObject({ code: READ_REVOKED_CLOSE_CODE, reason: "channel is now microdao" });
    expect(await fromAlpha.nextJson()).toMatchObject({ type: "channel.updated", channel: { visibility: "microdao" } });

    expect((await patch("private")).status).toBe(200);
    expect(await fromAlpha.closed).toMatchObject({ code: READ_REVOKED_CLOSE_CODE, reason: "channel is now private" });
    // The owner is a member with can_read: still connected, still receiving.
    await server.api(`${channels}/${ch.id}/messages`, { method: "POST", as: "user:owner5", json: { text: "members only" } });
    const frames: Array<{ type: string; message?: { content_preview: string } }> = [];
    while (!frames.some((f) => f.type === "message.created")) frames.push(await owner.nextJson());
    expect(frames.map((f) => f.type)).toEqual(["channel.updated", "channel.updated", "message.created"]);
    owner.close();
  });

  test(`losing can_read closes the member's sockets with ${READ_REVOKED_CLOSE_CODE}`, async () => {
    const ch = await createChannel(server, "user:owner3", { visibility: "private" });
    await server.api(`${channels}/${ch.id}/members`, { method: "POST", as: "user:owner3", json: { member_id: "user:finn" } });
    const finn = new WsInbox(new WebSocket(`${server.wsUrl}/ws/messaging/${ch.id}`, ["bearer", await hsToken("user:finn")]));
    await finn.opened;
    const res = await server.api(`${channels}/${ch.id}/members/user:finn`, { method: "PATCH", as: "user:owner3", json: { can_read: false } });
    expect(res.status).toBe(200);
    expect(await finn.nextJson()).toMatchObject({ type: "member.updated", member: { member_id: "user:finn", can_read: false } });
    expect(await finn.closed).toMatchObject({ code: READ_REVOKED_CLOSE_CODE });
  });

  test("/internal/*: missing token 401, wrong token 403, right token 200, compared in constant time", async () => {
    const compare = spyOn(secrets, "sameSecret");
    const ch = await createChannel(server, "user:gus");
    const path = `/internal/messaging/channels/${ch.id}/context`;
    const missing = await raw(server, path);
    expect(missing.status).toBe(401);
    expect((await missing.json()).error).toBe("UNAUTHENTICATED");
    const wrong = await raw(server, path, { "x-internal-service-token": "internal-token-0123456789abcdefghijklmnoX" });
    expect(wrong.status).toBe(403);
    expect((await wrong.json()).error).toBe("FORBIDDEN");
    const right = await raw(server, path, { "x-internal-service-token": JWT_TEST.internalToken });
    expect(right.status).toBe(200);
    expect((await right.json()).channel_id).toBe(ch.id);
    expect(compare).toHaveBeenCalledTimes(2);
    compare.mockRestore();
  });
});

describe("sameSecret", () => {
  test("equal only for the same secret, whatever the lengths", () => {
    expect(secrets.sameSecret("a-long-enough-secret", "a-long-enough-secret")).toBe(true);
    expect(secrets.sameSecret("a-long-enough-secret", "a-long-enough-secreT")).toBe(false);
    expect(secrets.sameSecret("short", "a-long-enough-secret")).toBe(false);
    expect(secrets.sameSecret("", "a-long-enough-secret")).toBe(false);
  });
});

describe("JWT bearer authentication (RS256 and ES256 from a JWKS URL)", () => {
  let server: TestServer;
  let jwks: ReturnType<typeof Bun.serve>;
  const keys: Record<string, CryptoKeyPair> = {};
  const sign = (alg: "RS256" | "ES256", sub: string, key = keys[alg]!.privateKey) =>
    new SignJWT({ microdaos: ["microdao:daarion"] })
      .setProtectedHeader({ alg, kid: alg })
      .setSubject(sub)
      .setIssuer(JWT_TEST.issuer)
      .setAudience(JWT_TEST.audience)
      .setExpirationTime("5m")
      .sign(key);

  beforeAll(async () => {
    keys.RS256 = await generateKeyPair("RS256");
    keys.ES256 = await generateKeyPair("ES256");
    const published = await Promise.all(
      Object.entries(keys).map(async ([alg, pair]) => ({ ...(await exportJWK(pair.publicKey)), kid: alg, alg, use: "sig" })),
    );
    // The identity provider is an outside party: a fake that publishes the keys is enough.
    jwks = Bun.serve({ port: 0, hostname: "127.0.0.1", fetch: () => Response.json({ keys: published }) });
    const env = jwtTestEnv({ JWT_JWKS_URL: `http://127.0.0.1:${jwks.port}/.well-known/jwks.json` });
    delete env.JWT_SECRET;
    server = await startTestServer(env, { token: (sub) => sign("RS256", sub) });
  }, 60_000);
  afterAll(async () => {
    await server?.stop();
    await jwks?.stop(true);
  }, 60_000);

  test("RS256 and ES256 tokens from the published keys are accepted", async () => {
    for (const alg of ["RS256", "ES256"] as const) {
      const res = await raw(server, channels, { authorization: `Bearer ${await sign(alg, "user:hana")}` });
      expect(res.status).toBe(200);
    }
  });

  test("a key the issuer did not publish, or an HS256 token, is 401", async () => {
    const stranger = await generateKeyPair("RS256");
    await expectUnauthenticated(await raw(server, channels, { authorization: `Bearer ${await sign("RS256", "user:hana", stranger.privateKey)}` }));
    await expectUnauthenticated(await raw(server, channels, await bearer("user:hana")));
  });

  test("the microdaos claim works the same with asymmetric keys", async () => {
    const ch = await createChannel(server, "user:ivo", { visibility: "microdao", microdao_id: "microdao:daarion" });
    const res = await raw(server, `${channels}/${ch.id}`, { authorization: `Bearer ${await sign("ES256", "user:jon")}` });
    expect(res.status).toBe(200);
  });
});

describe("dev mode (the default)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60_000);
  afterAll(() => server?.stop(), 60_000);

  test("X-User-Id names the caller; without INTERNAL_SERVICE_TOKEN /internal stays open", async () => {
    const ch = await createChannel(server, "user:kai");
    expect((await raw(server, `${channels}/${ch.id}`, { "x-user-id": "user:kai" })).status).toBe(200);
    expect((await raw(server, `/internal/messaging/channels/${ch.id}/context`)).status).toBe(200);
  });

  test("a Bearer token is not an identity in dev mode", async () => {
    const res = await raw(server, channels, await bearer("user:kai"));
    expect(res.status).toBe(401);
  });

  test("with INTERNAL_SERVICE_TOKEN set, dev mode checks it too", async () => {
    const guarded = await startTestServer({ INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken });
    try {
      const ch = await createChannel(guarded, "user:kai");
      expect((await raw(guarded, `/internal/messaging/channels/${ch.id}/context`)).status).toBe(401);
      expect((await raw(guarded, `/internal/messaging/channels/${ch.id}/context`, { "x-internal-service-token": JWT_TEST.internalToken })).status).toBe(200);
    } finally {
      await guarded.stop();
    }
  });

  test("start-up says loudly that X-User-Id is trusted and /internal is open", async () => {
    const proc = Bun.spawn(["bun", MAIN], {
      env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", PORT: String(await freePort()), HOST: "127.0.0.1", DATA_DIR: ":memory:" },
      stdout: "pipe",
      stderr: "pipe",
    });
    try {
      const out = new LineWatcher(proc.stdout);
      const [warned] = await out.waitFor((l) => l.includes('"level":40') && l.includes("AUTH_MODE=dev"));
      expect(warned).toContain("X-User-Id");
      await out.waitFor((l) => l.includes('"level":40') && l.includes("INTERNAL_SERVICE_TOKEN"));
    } finally {
      await terminate(proc);
    }
  });
});

describe("production mode refuses to start without real secrets", () => {
  const jwtOk = { AUTH_MODE: "jwt", JWT_SECRET: JWT_TEST.secret, JWT_ISSUER: JWT_TEST.issuer, JWT_AUDIENCE: JWT_TEST.audience };
  const cases: Array<[string, Record<string, string>]> = [
    ["JWT_SECRET", { AUTH_MODE: "jwt", JWT_ISSUER: "i", JWT_AUDIENCE: "a", INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken }],
    ["JWT_SECRET", { NODE_ENV: "production", JWT_ISSUER: "i", JWT_AUDIENCE: "a", INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken }],
    ["AUTH_MODE", { NODE_ENV: "production", AUTH_MODE: "dev" }],
    ["JWT_ISSUER", { ...jwtOk, JWT_ISSUER: "", INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken }],
    ["JWT_AUDIENCE", { ...jwtOk, JWT_AUDIENCE: "", INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken }],
    ["INTERNAL_SERVICE_TOKEN", jwtOk],
    ["INTERNAL_SERVICE_TOKEN", { ...jwtOk, INTERNAL_SERVICE_TOKEN: "change-me-change-me" }],
    ["JWT_SECRET", { ...jwtOk, JWT_SECRET: "x".repeat(40), INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken }],
    ["MATRIX_HS_TOKEN", { ...jwtOk, INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken, MATRIX_EVENTS_MODE: "push", MATRIX_HS_TOKEN: "hs-token-short" }],
    ["MATRIX_AS_TOKEN", { ...jwtOk, INTERNAL_SERVICE_TOKEN: JWT_TEST.internalToken, MATRIX_HOMESERVER_URL: "http://127.0.0.1:1", MATRIX_AS_TOKEN: "as-token-short" }],
  ];
  for (const [name, env] of cases) {
    test(`${name} (${Object.keys(env).join(", ")}): one line naming ${name}, exit 1`, async () => {
      const proc = Bun.spawn(["bun", MAIN], { env: { PATH: process.env.PATH!, HOME: process.env.HOME ?? "/tmp", ...env }, stdout: "pipe", stderr: "pipe" });
      const [code, stderr, stdout] = await Promise.all([proc.exited, new Response(proc.stderr).text(), new Response(proc.stdout).text()]);
      expect(code).toBe(1);
      const lines = stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(name);
      expect(stdout).toBe("");
    });
  }
});
