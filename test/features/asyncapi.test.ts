import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { DiagnosticSeverity, Parser } from "@asyncapi/parser";
import type { TSchema } from "@sinclair/typebox";
import { ClientFrame, SentFrame } from "../../src/realtime/model.ts";
import { Subjects } from "../../src/events/model.ts";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";

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
      expect(payload.required).toContain("channel_id");
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
