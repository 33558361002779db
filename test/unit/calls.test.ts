import { describe, expect, test } from "bun:test";
import { DEFAULT_MEMBERSHIP_EXPIRY_MS, legacyCallChange, parseCallMembers } from "../../src/domain/calls.ts";

describe("parseCallMembers", () => {
  test("per device: one membership; created_ts is the join, else the event's time; expires counts from it (4 h by default)", () => {
    expect(parseCallMembers({ application: "m.call", call_id: "", device_id: "D", expires: 1000, created_ts: 50, scope: "m.room", focus_active: {} }, 99)).toEqual([
      { deviceId: "D", callId: "", application: "m.call", scope: "m.room", joinedAt: 50, expiresAt: 1050 },
    ]);
    expect(parseCallMembers({ application: "m.call", call_id: "c", device_id: "D" }, 99)).toEqual([
      { deviceId: "D", callId: "c", application: "m.call", scope: null, joinedAt: 99, expiresAt: 99 + DEFAULT_MEMBERSHIP_EXPIRY_MS },
    ]);
  });

  test("per user: every entry of memberships, expires_ts winning over expires; entries without device or call id skipped", () => {
    const parsed = parseCallMembers(
      {
        memberships: [
          { application: "m.call", call_id: "", device_id: "A", expires_ts: 5000, expires: 1 },
          { call_id: "", device_id: "B" },
          { application: "m.call", device_id: "C" },
          { application: "m.call", call_id: "", device_id: 7 },
          "nonsense",
          null,
        ],
      },
      10,
    );
    expect(parsed.map((m) => [m.deviceId, m.application, m.expiresAt])).toEqual([
      ["A", "m.call", 5000],
      ["B", "m.call", 10 + DEFAULT_MEMBERSHIP_EXPIRY_MS],
    ]);
  });

  test("empty content, or no memberships: the slot left", () => {
    expect(parseCallMembers({}, 1)).toEqual([]);
    expect(parseCallMembers({ memberships: [] }, 1)).toEqual([]);
    expect(parseCallMembers({ "m.calls": [] }, 1)).toEqual([]);
  });
});

describe("legacyCallChange", () => {
  test("invite: lifetime (60 s by default) from the event's time, video when the offer has a video track, the invitee", () => {
    expect(legacyCallChange("m.call.invite", { call_id: "c", lifetime: 30000, offer: { sdp: "v=0\r\nm=audio 9\r\nm=video 9\r\n" }, invitee: "@b:x" }, 1000)).toEqual({
      kind: "invite",
      callId: "c",
      invitee: "@b:x",
      isVideo: true,
      ringsUntil: 31000,
    });
    expect(legacyCallChange("m.call.invite", { call_id: "c", offer: { sdp: "v=0\r\nm=audio 9\r\n" } }, 0)).toMatchObject({ isVideo: false, invitee: null, ringsUntil: 60000 });
  });

  test("answer, hangup (with its reason, user_hangup by default), reject; nothing without a call id or for other types", () => {
    expect(legacyCallChange("m.call.answer", { call_id: "c" }, 0)).toEqual({ kind: "answer", callId: "c" });
    expect(legacyCallChange("m.call.hangup", { call_id: "c", reason: "ice_failed" }, 0)).toEqual({ kind: "hangup", callId: "c", reason: "ice_failed" });
    expect(legacyCallChange("m.call.hangup", { call_id: "c" }, 0)).toEqual({ kind: "hangup", callId: "c", reason: "user_hangup" });
    expect(legacyCallChange("m.call.reject", { call_id: "c" }, 0)).toEqual({ kind: "reject", callId: "c" });
    expect(legacyCallChange("m.call.answer", {}, 0)).toBeNull();
    expect(legacyCallChange("m.call.candidates", { call_id: "c" }, 0)).toBeNull();
  });
});
