import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createChannel, startTestServer, type TestServer } from "../helpers/server.ts";
import { WsInbox } from "../helpers/ws-inbox.ts";
import { localMatrixUser } from "../helpers/local-matrix-user.ts";

setDefaultTimeout(30_000);

// Formatted bodies and the Matrix HTML allow-list.
{
  /**
   * formatted_body against the local Matrix backend: the API's HTML reaches Matrix sanitised, and
   * HTML written into the homeserver by a Matrix user (or kept from before sanitising) is served
   * sanitised. test/e2e/html.test.ts does the same against Synapse with matrix-js-sdk.
   */

  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer();
  }, 60000);
  afterAll(() => server?.stop(), 60000);

  const HOSTILE =
    '<p onmouseover="x()">hi <a href="javascript:alert(1)">there</a></p><script>alert(2)</script><img src="https://evil.example/t.png"><code class="language-ts hljs">x</code>' +
    '<span data-mx-color="#ff00AA" data-mx-bg-color="red;background:url(https://evil.example)" data-mx-spoiler="">s</span><style>*{}</style>';
  const SAFE = '<p>hi <a>there</a></p><code class="language-ts">x</code><span data-mx-color="#ff00AA" data-mx-spoiler>s</span>';

  const api = (path: string, init: Parameters<TestServer["api"]>[1] = {}) => server.api(`/api/messaging/channels${path}`, init);


  describe("formatted_body keeps to the Matrix HTML allow-list", () => {
    test("an API send and edit: Matrix gets the sanitised HTML, and so do API clients", async () => {
      const channel = await createChannel(server, "user:admin");
      const sent = await (await api(`/${channel.id}/messages`, { method: "POST", as: "user:alice", json: { text: "hi there", formatted_body: HOSTILE } })).json();
      const event = await server.app.deps.matrix.getEvent(channel.matrix_room_id, sent.matrix_event_id);
      expect(event.content).toMatchObject({ format: "org.matrix.custom.html", formatted_body: SAFE });
      expect((await (await api(`/${channel.id}/messages/${sent.id}`, { as: "user:alice" })).json()).content.formatted_body).toBe(SAFE);

      const edited = await api(`/${channel.id}/messages/${sent.id}`, { method: "PATCH", as: "user:alice", json: { text: "hi again", formatted_body: HOSTILE } });
      expect(edited.status).toBe(200);
      const [edit] = await server.app.deps.sql`select matrix_event_id, formatted_body from message_edits where message_id = ${sent.id} and version = 2`;
      expect(edit!.formatted_body).toBe(SAFE);
      const editEvent = await server.app.deps.matrix.getEvent(channel.matrix_room_id, edit!.matrix_event_id);
      expect(editEvent.content).toMatchObject({ formatted_body: `* ${SAFE}`, "m.new_content": { formatted_body: SAFE } });
    });

    test("a Matrix user's HTML, and HTML indexed before sanitising, are served sanitised", async () => {
      const channel = await createChannel(server, "user:admin", { visibility: "public" });
      const inbox = await WsInbox.open(`${server.wsUrl}/ws/messaging/${channel.id}?user_id=user:watcher`);
      try {
        const send = await localMatrixUser(server, channel.matrix_room_id);
        const original = await send({ msgtype: "m.text", body: "hi there", format: "org.matrix.custom.html", formatted_body: HOSTILE });
        const created = await inbox.nextOfType("message.created");
        const detail = await (await api(`/${channel.id}/messages/${created.message.id}`, { as: "user:alice" })).json();
        expect(detail.content).toEqual({ msgtype: "m.text", body: "hi there", format: "org.matrix.custom.html", formatted_body: SAFE });

        await send({
          msgtype: "m.text",
          body: "* edited",
          "m.new_content": { msgtype: "m.text", body: "edited", format: "org.matrix.custom.html", formatted_body: HOSTILE },
          "m.relates_to": { rel_type: "m.replace", event_id: original },
        });
        await inbox.nextOfType("message.updated");
        const [stored] = await server.app.deps.sql`select formatted_body from message_edits where message_id = ${created.message.id} and version = 2`;
        expect(stored!.formatted_body).toBe(SAFE);
        // A version written before HTML was sanitised on the way in.
        await server.app.deps.sql`update message_edits set formatted_body = ${HOSTILE} where message_id = ${created.message.id} and version = 2`;
        const versions = await (await api(`/${channel.id}/messages/${created.message.id}/edits`, { as: "user:alice" })).json();
        expect(versions.map((v: { formatted_body: string | null }) => v.formatted_body)).toEqual([null, SAFE]);
      } finally {
        inbox.close();
      }
    });
  });
}

// Content previews cut at a whole grapheme.
{
  /**
   * content_preview keeps at most 500 UTF-16 code units and is cut at a whole grapheme, however
   * the message came in: an API send, an upload's caption, an API edit, a Matrix message (with
   * or without a reply fallback) and a Matrix edit. Stored rows are read back from the database.
   */

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
}
