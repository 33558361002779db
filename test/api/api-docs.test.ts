import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireServices } from "../helpers/services.ts";
import { startTestServer, type TestServer, createChannel } from "../helpers/server.ts";
import type { Browser } from "playwright-core";
import { CHROMIUM_PATH, launchChromium } from "../helpers/chromium.ts";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";
import type { TSchema } from "@sinclair/typebox";
import { ClientFrame, SentFrame } from "../../src/realtime/model.ts";
import { Subjects } from "../../src/events/model.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

setDefaultTimeout(60_000);

// The OpenAPI document.
{
  /**
   * /docs/json held to the OpenAPI 3.1 specification by a real validator (openapi-spec-validator
   * from PyPI, installed into the git-ignored .fuzz/openapi-venv on first use, as scripts/fuzz.ts
   * does for Schemathesis), and to what clients need from it. Without Python the validator run
   * skips, except under REQUIRE_SERVICES=1 (CI), where it must run.
   */

  const root = join(import.meta.dir, "..", "..");
  const venv = join(root, ".fuzz", "openapi-venv");
  const validator = join(venv, "bin", "openapi-spec-validator");
  const canValidate = existsSync(validator) || Bun.which("python3") !== null;

  type Operation = {
    operationId?: string;
    tags?: string[];
    security?: Array<Record<string, string[]>>;
    parameters?: Array<{ in: string; name: string }>;
    responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: unknown }> }>;
  };
  type Doc = {
    openapi: string;
    tags: Array<{ name: string }>;
    paths: Record<string, Record<string, Operation>>;
    components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme?: string; name?: string }> };
  };

  let server: TestServer;
  let doc: Doc;
  const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
  const byId = (id: string) => operations().find((o) => o.op.operationId === id)!;

  beforeAll(async () => {
    server = await startTestServer();
    doc = (await (await fetch(`${server.url}/docs/json`)).json()) as Doc;
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function run(cmd: string[]): Promise<{ code: number; out: string }> {
    const proc = Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { code, out: out + err };
  }

  describe.skipIf(!requireServices && !canValidate)("OpenAPI validator", () => {
    test(
      "openapi-spec-validator finds no error in /docs/json",
      async () => {
        if (!existsSync(validator)) {
          expect((await run(["python3", "-m", "venv", venv])).code).toBe(0);
          const pip = await run([join(venv, "bin", "pip"), "install", "--quiet", "openapi-spec-validator"]);
          if (pip.code !== 0) console.error(pip.out);
          expect(pip.code).toBe(0);
        }
        const dir = mkdtempSync(join(tmpdir(), "openapi-"));
        try {
          const file = join(dir, "openapi.json");
          writeFileSync(file, JSON.stringify(doc));
          const result = await run([validator, file]);
          if (result.code !== 0) console.error(result.out.slice(0, 5000));
          expect(result.out).toContain(": OK");
          expect(result.code).toBe(0);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
      180_000,
    );
  });

  describe("/docs/json says what clients need", () => {
    test("OpenAPI 3.1, with the views and the error body as reusable components", () => {
      expect(doc.openapi).toMatch(/^3\.1\./);
      expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Error", "Channel", "Message", "Member", "Pin"]));
      const created = byId("createChannel").op.responses["201"]!.content!["application/json"]!.schema;
      expect(created).toEqual({ $ref: "#/components/schemas/Channel" });
      expect(byId("listMessages").op.responses["200"]!.content!["application/json"]!.schema).toEqual({
        type: "array",
        items: { $ref: "#/components/schemas/Message" },
      });
      expect(byId("sendMessage").op.responses["403"]!.content!["application/json"]!.schema).toEqual({ $ref: "#/components/schemas/Error" });
    });

    test("credentials are security schemes, not header parameters", () => {
      const schemes = doc.components.securitySchemes;
      expect(schemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
      expect(schemes.internalToken).toMatchObject({ type: "apiKey", name: "X-Internal-Service-Token" });
      expect(schemes.homeserverToken).toMatchObject({ type: "http", scheme: "bearer" });
      expect(byId("sendMessage").op.security).toEqual([{ bearerAuth: [] }, { devUserId: [] }]);
      expect(byId("getChannelContext").op.security).toEqual([{ internalToken: [] }]);
      expect(byId("pushTransaction").op.security).toEqual([{ homeserverToken: [] }]);
      const credentialParams = operations().flatMap(({ op }) => (op.parameters ?? []).filter((p) => p.in === "header" && /^(authorization|x-user-id|x-internal-service-token)$/.test(p.name)));
      expect(credentialParams).toEqual([]);
    });

    test("readable, unique operation ids, and declared tags that are all used", () => {
      const ids = operations().map((o) => o.op.operationId);
      expect(ids.filter((id) => !id || !/^[a-z][A-Za-z]+$/.test(id))).toEqual([]);
      expect(new Set(ids).size).toBe(ids.length);
      expect(byId("listChannels")).toMatchObject({ method: "get", path: "/api/messaging/channels" });
      expect(byId("sendMessage")).toMatchObject({ method: "post", path: "/api/messaging/channels/{id}/messages" });
      expect(byId("postAsAgent")).toMatchObject({ method: "post", path: "/internal/agents/{agent_id}/post-to-channel" });
      const declared = doc.tags.map((t) => t.name).sort();
      const used = [...new Set(operations().flatMap((o) => o.op.tags ?? []))].sort();
      expect(used).toEqual(declared);
    });

    test("no trailing slashes, and Idempotency-Key on POST only", () => {
      expect(Object.keys(doc.paths).filter((p) => p !== "/" && p.endsWith("/"))).toEqual([]);
      const misplaced = operations().filter(({ method, op }) => method !== "post" && (op.parameters ?? []).some((p) => p.name === "idempotency-key"));
      expect(misplaced.map((o) => `${o.method} ${o.path}`)).toEqual([]);
      expect((byId("sendMessage").op.parameters ?? []).map((p) => p.name)).toContain("idempotency-key");
    });

    test("429 with Retry-After, 503, and the paging, rate-limit and replay headers", () => {
      const send = byId("sendMessage").op.responses;
      expect(Object.keys(send["429"]!.headers!)).toEqual(expect.arrayContaining(["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]));
      expect(send["503"]).toBeDefined();
      expect(Object.keys(send["201"]!.headers!)).toEqual(expect.arrayContaining(["Idempotent-Replayed", "X-RateLimit-Remaining"]));
      expect(Object.keys(byId("listMessages").op.responses["200"]!.headers!)).toContain("X-Next-Cursor");
      expect(Object.keys(byId("searchMessages").op.responses["200"]!.headers!)).toContain("X-Next-Offset");
      expect(byId("listMessages").op.responses["200"]!.headers!["Idempotent-Replayed"]).toBeUndefined();
    });
  });
}

// The Swagger UI at /docs in a browser.
{
  /**
   * /docs in real Chromium (Debian's /usr/bin/chromium) with every host but 127.0.0.1 blocked:
   * the page must render the operations from the app's own files. Without Chromium the suite
   * skips, except under REQUIRE_SERVICES=1 (CI), where a missing Chromium fails it. Playwright
   * starts it on a fresh, temporary profile.
   */

  const haveChromium = existsSync(CHROMIUM_PATH);

  describe.skipIf(!haveChromium && !requireServices)("docs UI offline, in Chromium", () => {
    let server: TestServer;
    let browser: Browser;
    beforeAll(async () => {
      if (!haveChromium) throw new Error(`REQUIRE_SERVICES=1 but Chromium is missing at ${CHROMIUM_PATH} (apt-get install chromium)`);
      server = await startTestServer();
      browser = await launchChromium();
    });
    afterAll(async () => {
      await browser?.close();
      await server?.stop();
    });

    test("renders every operation from local files, with no request leaving the machine", async () => {
      const context = await browser.newContext();
      const blocked: string[] = [];
      const served: string[] = [];
      await context.route("**/*", (route) => {
        const url = new URL(route.request().url());
        if (url.hostname === "127.0.0.1") {
          served.push(url.pathname);
          return route.continue();
        }
        blocked.push(url.href);
        return route.abort("blockedbyclient");
      });
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("pageerror", (err) => errors.push(err.message));
      await page.goto(`${server.url}/docs`);
      for (const id of ["listChannels", "sendMessage", "postAsAgent", "createChannel"]) {
        await page.getByText(id, { exact: true }).first().waitFor({ state: "visible", timeout: 20_000 });
      }
      const summaries = await page.locator(".opblock-summary-path").allInnerTexts();
      expect(summaries.map((s) => s.replace(/\u200b/g, ""))).toEqual(expect.arrayContaining(["/api/messaging/channels", "/api/messaging/channels/{id}/messages"]));
      expect(await page.locator(".opblock").count()).toBeGreaterThan(25);
      expect(served).toEqual(expect.arrayContaining(["/docs", "/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css", "/docs/json"]));
      expect(blocked).toEqual([]);
      expect(errors).toEqual([]);
      await context.close();
    });
  });
}

// The AsyncAPI document.
{
  type Json = Record<string, any>;

  let server: TestServer;
  let doc: Json;
  beforeAll(async () => {
    server = await startTestServer();
    const res = await server.api("/docs/asyncapi.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain("application/json");
    doc = await res.json();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const errorsOf = async (document: unknown) =>
    (await new Parser().validate(document as never)).filter((d) => d.severity === DiagnosticSeverity.Error);

  /** Follows a local $ref ("#/a/b") in the document. */
  const resolve = (node: Json): Json =>
    node.$ref ? resolve(node.$ref.slice(2).split("/").reduce((at: Json, key: string) => at[key], doc)) : node;

  /** The payload of every message the websocket operations name, by frame type, for one direction. */
  function websocketPayloads(direction: "server" | "client"): Map<string, Json> {
    const payloads = new Map<string, Json>();
    for (const operation of Object.values(doc.operations as Record<string, Json>)) {
      if (operation.channel.$ref !== "#/channels/websocket") continue;
      const own = (operation.action === "send") === (direction === "server") ? operation.messages : [];
      const replies = (operation.action === "receive") === (direction === "server") ? (operation.reply?.messages ?? []) : [];
      for (const ref of [...own, ...replies]) {
        const message = resolve(ref);
        const payload = resolve(message.payload);
        const type = payload.properties?.type?.const ?? payload.const;
        payloads.set(type, payload);
      }
    }
    return payloads;
  }

  /** The literal `type` of every object member of a (nested) TypeBox union. */
  function frameTypes(schema: TSchema): string[] {
    if (schema.anyOf) return schema.anyOf.flatMap(frameTypes);
    if (schema.allOf) return schema.allOf.flatMap(frameTypes);
    return schema.properties?.type?.const ? [schema.properties.type.const] : [];
  }

  describe("AsyncAPI document at /docs/asyncapi.json", () => {
    test("is an AsyncAPI 3 document the AsyncAPI parser finds no error in", async () => {
      expect(doc.asyncapi).toMatch(/^3\./);
      expect(await errorsOf(doc)).toEqual([]);
    });

    test("the parser does report a broken document (the check above can fail)", async () => {
      const broken = structuredClone(doc);
      broken.operations.sendFrames.channel = { $ref: "#/channels/nowhere" };
      delete broken.info.version;
      expect((await errorsOf(broken)).length).toBeGreaterThan(0);
    });

    test("names every frame the server sends (the SentFrame union, error and pong) and every client frame", () => {
      const sent = websocketPayloads("server");
      expect([...sent.keys()].sort()).toEqual([...frameTypes(SentFrame), "error", "pong"].sort());
      const received = websocketPayloads("client");
      expect([...received.keys()].sort()).toEqual([...frameTypes(ClientFrame), "ping"].sort());
    });

    test("every server frame except error carries seq", () => {
      for (const [type, payload] of websocketPayloads("server")) {
        if (type === "error" || type === "pong") continue;
        expect({ type, required: payload.required.includes("seq") }).toEqual({ type, required: true });
      }
    });

    test("describes the resume protocol: since_seq on the upgrade, the resume frame answered by replay, resumed or resync_required", () => {
      const binding = doc.channels.websocket.bindings.ws;
      expect(Object.keys(binding.query.properties)).toContain("since_seq");
      const resume = doc.operations.receiveResume;
      expect(resolve(resolve(resume.messages[0]).payload).required).toEqual(["type", "since_seq"]);
      const replies = resume.reply.messages.map((ref: Json) => resolve(resolve(ref).payload).properties.type.const);
      expect(replies).toEqual(["message.created", "resumed", "resync_required", "error"]);
    });

    test("documents integers as JSON numbers, as the server checks frames (not Elysia's numeric query strings)", () => {
      const text = JSON.stringify(doc);
      expect(text).not.toContain('"format":"integer"');
      expect(text).not.toContain('"format":"numeric"');
      const resume = resolve(resolve(doc.operations.receiveResume.messages[0]).payload);
      expect(resume.properties.since_seq).toEqual({ minimum: 0, type: "integer" });
      expect(websocketPayloads("server").get("message.created")!.properties.seq).toEqual({ type: "integer" });
    });

    test("lists the close codes", () => {
      const codes = doc.channels.websocket["x-close-codes"].map((c: Json) => c.code);
      for (const code of [4008, 4401, 4403, 4410, 4429, 1013, 1001]) expect(codes).toContain(code);
      for (const code of [4008, 4401, 4403, 4410, 4429, 1013, 1001]) expect(doc.channels.websocket.description).toContain(`| ${code} |`);
    });

    test("has a channel and a send operation for every NATS subject, with its payload", () => {
      const subjects = Object.values(Subjects);
      const addresses = Object.values(doc.channels as Record<string, Json>).map((c) => c.address);
      for (const subject of subjects) {
        expect(addresses).toContain(subject);
        const operation = Object.values(doc.operations as Record<string, Json>).find(
          (op) => op.action === "send" && resolve(op.channel).address === subject,
        );
        expect(operation).toBeDefined();
        const payload = resolve(resolve(operation!.messages[0]).payload);
        expect(payload.required).toContain("event_id");
        // Every event names its channel; a space's events (no channel) name their microDAO.
        expect(payload.required).toContain(subject.startsWith("messaging.space.") ? "microdao_id" : "channel_id");
      }
      expect(addresses.length).toBe(subjects.length + 1);
    });

    test("the frames a live socket receives are the documented ones, with the documented fields", { timeout: 30000 }, async () => {
      const sent = websocketPayloads("server");
      const channel = await createChannel(server, "user:admin");
      const wsUrl = (query: string) => `${server.wsUrl}/ws/messaging/${channel.id}?${query}`;
      const alice = await WsInbox.open(wsUrl("user_id=user:alice"));
      const post = await server.api(`/api/messaging/channels/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "hi" } });
      const message = await post.json();
      await server.api(`/api/messaging/channels/${channel.id}/messages/${message.id}/reactions`, { method: "POST", as: "user:alice", json: { emoji: "👍" } });
      await server.api(`/api/messaging/channels/${channel.id}/read`, { method: "POST", as: "user:alice", json: { message_id: message.id } });
      alice.ws.send(JSON.stringify({ type: "typing", typing: true }));
      alice.ws.send(JSON.stringify({ type: "nonsense" }));
      // The error answer overtakes the typing frame, which goes through the channel's actor: any order.
      const wanted = new Set(["message.created", "reaction.added", "read", "typing", "error"]);
      const frames = [];
      while (wanted.size > 0) {
        const frame = await alice.nextJson();
        frames.push(frame);
        wanted.delete(frame.type);
      }
      alice.ws.send("ping");
      while ((await alice.next()) !== "pong");
      alice.close();
      const resumed = await WsInbox.open(wsUrl("user_id=user:bob&since_seq=0"));
      frames.push(await resumed.nextOfType("message.created"), await resumed.nextOfType("resumed"));
      resumed.close();

      for (const frame of frames) {
        const payload = sent.get(frame.type);
        expect(payload).toBeDefined();
        const keys = Object.keys(frame);
        expect({ type: frame.type, missing: payload!.required.filter((k: string) => !keys.includes(k)) }).toEqual({ type: frame.type, missing: [] });
        expect({ type: frame.type, undocumented: keys.filter((k) => !(k in payload!.properties)) }).toEqual({ type: frame.type, undocumented: [] });
      }
    });

    test("is not part of the OpenAPI document", async () => {
      const openapi = await (await server.api("/docs/json")).json();
      expect(Object.keys(openapi.paths)).not.toContain("/docs/asyncapi.json");
    });
  });
}
