import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { treaty } from "@elysiajs/eden";
import type { App } from "../../src/app.ts";
import { startTestServer, uniqueSlug, type TestServer } from "../helpers/server.ts";

/** The typed client: Eden Treaty built from `App` alone, against a running server. tsc checks its types (test/unit/typecheck.test.ts). */
describe("Eden Treaty client (local backend)", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await server?.stop();
  });

  test("create a channel, send a message, list the messages", async () => {
    const api = treaty<App>(server.url, { headers: { "x-user-id": "user:eden" } });
    const created = await api.api.messaging.channels.post({ slug: uniqueSlug("eden"), name: "Eden", microdao_id: "microdao:daarion", visibility: "public" });
    expect(created.status).toBe(201);
    if (!created.data || created.status !== 201) throw new Error(`create: ${created.status}`);
    const channel = created.data;
    expect(channel.name).toBe("Eden");

    const sent = await api.api.messaging.channels({ id: channel.id }).messages.post({ text: "typed hello" });
    expect([201, 202]).toContain(sent.status);

    const listed = await api.api.messaging.channels({ id: channel.id }).messages.get({ query: { limit: 10 } });
    expect(listed.status).toBe(200);
    const texts: string[] = (listed.data ?? []).map((m) => m.content_preview);
    expect(texts).toContain("typed hello");
  });
});
