import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { localMatrixUser } from "../helpers/local-matrix-user.ts";

/**
 * content_preview keeps at most 500 UTF-16 code units and is cut at a whole grapheme, however
 * the message came in: an API send, an upload's caption, an API edit, a Matrix message (with
 * or without a reply fallback) and a Matrix edit. Stored rows are read back from the database.
 */
setDefaultTimeout(30_000);

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
}, 60000);
afterAll(() => server?.stop(), 60000);

const FAMILY = "👨‍👩‍👧‍👦"; // 11 code units, one grapheme
/** [text, the preview it must get] */
const CASES: Array<[string, string]> = [
  ["a" + "😀".repeat(400), "a" + "😀".repeat(249)],
  ["b".repeat(495) + FAMILY + " and more", "b".repeat(495)],
  ["c".repeat(489) + FAMILY + "d", "c".repeat(489) + FAMILY],
  ["e" + "\u0301".repeat(700), "e" + "\u0301".repeat(499)],
];

const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);
const storedPreview = async (messageId: string) =>
  ((await server.app.deps.sql`select content_preview from messages where id = ${messageId}`)[0] as { content_preview: string }).content_preview;

function expectWholeGraphemes(preview: string, expected: string) {
  expect({ wellFormed: preview.isWellFormed(), withinLimit: preview.length <= 500, preview }).toEqual({ wellFormed: true, withinLimit: true, preview: expected });
}



describe("content_preview is cut at a whole grapheme", () => {
  test("an API send and an upload caption", async () => {
    const channel = await createChannel(server, "user:admin");
    for (const [text, expected] of CASES) {
      const res = await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text } });
      expect(res.status).toBe(201);
      const sent = await res.json();
      expectWholeGraphemes(sent.content_preview, expected);
      expectWholeGraphemes(await storedPreview(sent.id), expected);
    }
    const form = new FormData();
    form.set("file", new File([new Uint8Array(10)], "a.pdf", { type: "application/pdf" }));
    form.set("text", CASES[0]![0]);
    const upload = await api(`/${channel.id}/files`, { method: "POST", as: "user:alice", body: form });
    expect(upload.status).toBe(201);
    expectWholeGraphemes(await storedPreview((await upload.json()).id), CASES[0]![1]);
  });

  test("an API edit: the message and its version in the history", async () => {
    const channel = await createChannel(server, "user:admin");
    const sent = await (await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "short" } })).json();
    for (const [text, expected] of CASES) {
      const res = await api(`/${channel.id}/messages/${sent.id}`, { method: "PATCH", as: "user:alice", json: { text } });
      expect(res.status).toBe(200);
      expectWholeGraphemes((await res.json()).content_preview, expected);
      expectWholeGraphemes(await storedPreview(sent.id), expected);
    }
    const versions = await (await api(`/${channel.id}/messages/${sent.id}/edits`, { as: "user:alice" })).json();
    expect(versions.map((v: { content_preview: string }) => v.content_preview)).toEqual(["short", ...CASES.map(([, expected]) => expected)]);
  });

  test("a message and an edit from Matrix, with and without a reply fallback", async () => {
    const channel = await createChannel(server, "user:admin", { visibility: "public" });
    const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
    try {
      const send = await localMatrixUser(server, channel.matrix_room_id);
      for (const [text, expected] of CASES) {
        for (const body of [text, `> <@someone:daarion.city> quoted\n\n${text}`]) {
          await send({ msgtype: "m.text", body });
          const frame = await inbox.nextOfType("message.created");
          expectWholeGraphemes(frame.message.content_preview, expected);
          expectWholeGraphemes(await storedPreview(frame.message.id), expected);
        }
      }
      const original = await send({ msgtype: "m.text", body: "to be edited" });
      const created = await inbox.nextOfType("message.created");
      const [text, expected] = CASES[1]!;
      await send({ msgtype: "m.text", body: `* ${text}`, "m.new_content": { msgtype: "m.text", body: text }, "m.relates_to": { rel_type: "m.replace", event_id: original } });
      const updated = await inbox.nextOfType("message.updated");
      expect(updated.message.id).toBe(created.message.id);
      expectWholeGraphemes(updated.message.content_preview, expected);
      expectWholeGraphemes(await storedPreview(created.message.id), expected);
    } finally {
      inbox.close();
    }
  });
});
