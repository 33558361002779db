import { describe, expect, test } from "bun:test";
import { channelTables, features } from "../../src/features/index.ts";
import { commandTable } from "../../src/channel/commands.ts";
import { handlerFor, handlerTable, ignored, type EventHandler } from "../../src/channel/handlers.ts";
import type { MatrixEvent } from "../../src/domain/event-types.ts";

const handler = (kinds: string[]): EventHandler => ({ kinds, handle: async () => ignored() });
const event = (type: string, content: Record<string, unknown> = {}): MatrixEvent => ({
  event_id: "$e",
  room_id: "!r:x",
  sender: "@a:x",
  type,
  content,
  origin_server_ts: 0,
});

describe("the features' tables", () => {
  test("the /sync filter and the inbox ask for the event types the features handle, and no other", () => {
    const { types } = channelTables().handlers;
    expect(new Set(types.timeline)).toEqual(
      new Set([
        "m.room.message",
        "m.room.member",
        "m.room.name",
        "m.room.topic",
        "m.room.redaction",
        "m.reaction",
        "m.room.power_levels",
        "m.room.pinned_events",
        "m.room.encrypted",
        "org.matrix.msc3401.call.member",
        "m.call.member",
        "m.call.invite",
        "m.call.answer",
        "m.call.hangup",
        "m.call.reject",
        "m.space.child",
      ]),
    );
    expect(new Set(types.state)).toEqual(
      new Set(["m.room.member", "m.room.name", "m.room.topic", "m.room.power_levels", "m.room.pinned_events", "org.matrix.msc3401.call.member", "m.call.member"]),
    );
    expect(new Set(types.ephemeral)).toEqual(new Set(["m.typing", "m.receipt"]));
  });

  test("two handlers for one event kind, or two commands of one name, are refused at start-up", () => {
    expect(() => handlerTable([handler(["m.reaction"]), handler(["m.room.redaction", "m.reaction"])], [])).toThrow("two Matrix event handlers for m.reaction");
    const run = async () => null;
    expect(() => commandTable([{ "pins.pin": run }, { "pins.pin": run }])).toThrow("two channel commands are named pins.pin");
    // The features as shipped claim every kind and name once.
    expect(() => channelTables(features())).not.toThrow();
  });

  test("an event that relates to another goes to its relation's handler when one is registered, else to its type's", () => {
    const messages = handler(["m.room.message"]);
    const edits = handler(["m.room.message|m.replace"]);
    const table = handlerTable([messages, edits], []);
    expect(handlerFor(table, event("m.room.message", { "m.relates_to": { rel_type: "m.replace" } }))).toBe(edits);
    expect(handlerFor(table, event("m.room.message", { "m.relates_to": { rel_type: "m.thread" } }))).toBe(messages);
    expect(handlerFor(table, event("m.room.topic"))).toBeUndefined();
  });
});
