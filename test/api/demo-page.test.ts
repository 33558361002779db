import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import type { Browser, Page, WebSocketRoute } from "playwright-core";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { jwtTestEnv } from "../helpers/jwt.ts";
import { chromiumMissing, launchChromium } from "../helpers/chromium.ts";

const ARTIFACTS = new URL("../../test-artifacts/", import.meta.url).pathname;
const WAIT = { timeout: 15000 };

describe("demo page: served in dev mode only", () => {
  let dev: TestServer;
  let jwt: TestServer;
  beforeAll(async () => {
    [dev, jwt] = await Promise.all([startTestServer(), startTestServer(jwtTestEnv())]);
  }, 60000);
  afterAll(() => Promise.all([dev?.stop(), jwt?.stop()]), 60000);

  test("dev mode serves the page at / and its script and style", async () => {
    const page = await fetch(dev.url + "/");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    const html = await page.text();
    expect(html).toContain('<script src="/demo/demo.js">');
    for (const [path, type] of [["/demo/demo.js", "javascript"], ["/demo/demo.css", "text/css"]] as const) {
      const res = await fetch(dev.url + path);
      expect({ path, status: res.status, type: res.headers.get("content-type")?.includes(type) }).toEqual({ path, status: 200, type: true });
    }
  });

  test("the page's routes are not in the OpenAPI document", async () => {
    const paths = Object.keys((await (await dev.api("/docs/json")).json()).paths);
    for (const path of ["/", "/demo/demo.js", "/demo/demo.css"]) expect(paths).not.toContain(path);
  });

  test("jwt mode (production) has no demo: / is a 404 JSON error", async () => {
    for (const path of ["/", "/demo/demo.js"]) {
      const res = await jwt.api(path);
      expect({ path, status: res.status, error: (await res.json()).error }).toEqual({ path, status: 404, error: "NOT_FOUND" });
    }
  });
});

describe.skipIf(chromiumMissing())("demo page in Chromium: two people on one channel", () => {
  let server: TestServer;
  let browser: Browser;
  const pageErrors: string[] = [];
  beforeAll(async () => {
    [server, browser] = await Promise.all([startTestServer(), launchChromium()]);
  }, 60000);
  afterAll(() => Promise.all([browser?.close(), server?.stop()]), 60000);

  /** A page for `user` in its own browser context, recording script errors and the WebSocket URLs it opened. */
  async function open(user: string, query = "", beforeLoad?: (page: Page) => Promise<void>) {
    const page = await (await browser.newContext({ viewport: { width: 1100, height: 720 } })).newPage();
    const sockets: string[] = [];
    page.on("pageerror", (err) => pageErrors.push(`${user}: ${err.message}`));
    page.on("websocket", (ws) => sockets.push(ws.url()));
    await beforeLoad?.(page);
    await page.goto(`${server.url}/?user=${encodeURIComponent(user)}${query}`);
    return { page, sockets };
  }
  const postAs = async (channelId: string, as: string, text: string) => {
    const res = await server.api(`/api/messaging/channels/${channelId}/messages`, { method: "POST", as, json: { text } });
    expect(res.status).toBe(201);
  };
  const message = (page: Page, text: string) => page.locator(".message", { hasText: text });
  const live = (page: Page) => page.locator('#status[data-state="live"]').waitFor(WAIT);

  test(
    "a channel created in one page is watched in the other: messages, replies, reactions, typing, read, resume",
    async () => {
      const alice = await open("user:alice");
      await alice.page.fill("#channel-name", "Demo room");
      await alice.page.click("#create button");
      await alice.page.locator("#channel-title", { hasText: "# Demo room" }).waitFor(WAIT);
      await live(alice.page);

      // Bob finds the channel in the list (GET /channels) and opens it.
      const bob = await open("user:bob");
      await bob.page.locator("#channels button", { hasText: "# Demo room" }).click();
      await live(bob.page);

      await bob.page.fill("#text", "hello from bob");
      await bob.page.press("#text", "Enter");
      await message(alice.page, "hello from bob").waitFor(WAIT);

      // A reply (reply_to) shows the quoted message on the other side.
      await message(alice.page, "hello from bob").locator(".reply").click();
      await alice.page.fill("#text", "welcome, bob");
      await alice.page.press("#text", "Enter");
      const reply = message(bob.page, "welcome, bob");
      await reply.locator(".quote", { hasText: "user:bob: hello from bob" }).waitFor(WAIT);

      // Bob reacts; Alice sees the count. Bob's page marked the reply read; Alice sees who read it.
      await reply.locator('.react[data-emoji="👍"]').click();
      await message(alice.page, "welcome, bob").locator(".reaction", { hasText: "👍 1" }).waitFor(WAIT);
      await message(alice.page, "welcome, bob").locator(".read-by", { hasText: "Seen by user:bob" }).waitFor(WAIT);

      // Alice types; Bob sees it.
      await alice.page.locator("#text").pressSequentially("I am writing", { delay: 20 });
      await bob.page.locator("#typing", { hasText: "user:alice is typing…" }).waitFor(WAIT);

      mkdirSync(ARTIFACTS, { recursive: true });
      await alice.page.screenshot({ path: `${ARTIFACTS}demo.png` });
      await bob.page.screenshot({ path: `${ARTIFACTS}demo-bob.png` });

      // Alice pauses (closes her socket); what Bob sends meanwhile arrives when she resumes with since_seq.
      const seqBefore = Number(await alice.page.locator(".message .seq").last().textContent().then((s) => s!.slice(1)));
      await alice.page.click("#pause");
      await alice.page.locator('#status[data-state="paused"]').waitFor(WAIT);
      const channelId = new URL(alice.page.url()).searchParams.get("channel")!;
      for (const text of ["while you were away 1", "while you were away 2"]) await postAs(channelId, "user:bob", text);
      await message(bob.page, "while you were away 2").waitFor(WAIT);
      expect(await message(alice.page, "while you were away").count()).toBe(0);
      await alice.page.click("#pause");
      await alice.page.locator("#status", { hasText: "2 replayed" }).waitFor(WAIT);
      expect(await message(alice.page, "while you were away").count()).toBe(2);
      expect(alice.sockets.at(-1)).toContain(`since_seq=${seqBefore}`);
      expect(pageErrors).toEqual([]);
    },
    120000,
  );

  test("reconnects by itself when the connection drops (close 1001), resuming after the last seq", async () => {
    const channel = await createChannel(server, "user:carol");
    await postAs(channel.id, "user:carol", "before the drop");
    // The page's sockets go through Playwright, which can end one as a server going away would.
    const routes: WebSocketRoute[] = [];
    const carol = await open("user:carol", `&channel=${channel.id}`, (page) =>
      page.routeWebSocket(/\/ws\/messaging\//, (route) => {
        route.connectToServer();
        routes.push(route);
      }),
    );
    await message(carol.page, "before the drop").waitFor(WAIT);
    await live(carol.page);
    await routes[0]!.close({ code: 1001, reason: "server shutting down: reconnect with since_seq" });
    await carol.page.locator('#status[data-state="reconnecting"]', { hasText: "disconnected (1001); resuming after seq 1" }).waitFor(WAIT);
    await postAs(channel.id, "user:dave", "after the drop");
    await message(carol.page, "after the drop").waitFor(WAIT);
    await live(carol.page);
    expect(routes.map((r) => new URL(r.url()).searchParams.get("since_seq"))).toEqual(["1", "1"]);
    expect(await carol.page.locator(".message").count()).toBe(2);
    expect(pageErrors).toEqual([]);
  }, 60000);
});
