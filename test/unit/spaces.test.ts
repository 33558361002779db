import { describe, expect, test } from "bun:test";
import {
  advertisedInSpace,
  canonicalJson,
  compareSpaceChildren,
  defaultSpaceOrder,
  groupAliasLocalpart,
  isLiveChild,
  spaceAliasLocalpart,
  spaceJoinRule,
  validSpaceOrder,
} from "../../src/domain/spaces.ts";
import { aliasLocalpartFor } from "../../src/domain/ids.ts";

describe("space rules", () => {
  test("order: 1 to 50 characters of printable ASCII", () => {
    expect(validSpaceOrder("a")).toBe(true);
    expect(validSpaceOrder(" ~")).toBe(true);
    expect(validSpaceOrder("x".repeat(50))).toBe(true);
    expect(validSpaceOrder("x".repeat(51))).toBe(false);
    expect(validSpaceOrder("")).toBe(false);
    expect(validSpaceOrder("é")).toBe(false);
    expect(validSpaceOrder("a\n")).toBe(false);
    expect(validSpaceOrder("\x7f")).toBe(false);
    expect(validSpaceOrder(3)).toBe(false);
  });

  test("the spec's child ordering: valid orders first, lexicographically, then by room id", () => {
    const kids = [
      { order: null, room_id: "!b" },
      { order: "b", room_id: "!z" },
      { order: "é", room_id: "!a" },
      { order: "a", room_id: "!y" },
      { order: "a", room_id: "!x" },
      { order: "B", room_id: "!w" },
    ];
    expect(kids.sort(compareSpaceChildren).map((k) => k.room_id)).toEqual(["!w", "!x", "!y", "!z", "!a", "!b"]);
  });

  test("default orders follow creation and stay valid", () => {
    const a = defaultSpaceOrder(new Date("2026-12-01T10:00:00Z"));
    const b = defaultSpaceOrder(new Date("2026-12-01T10:00:00.001Z"));
    expect(validSpaceOrder(a) && validSpaceOrder(b)).toBe(true);
    expect(a < b).toBe(true);
  });

  test("private and archived channels are not advertised", () => {
    expect(advertisedInSpace({ visibility: "public", archived_at: null })).toBe(true);
    expect(advertisedInSpace({ visibility: "microdao", archived_at: null })).toBe(true);
    expect(advertisedInSpace({ visibility: "private", archived_at: null })).toBe(false);
    expect(advertisedInSpace({ visibility: "public", archived_at: new Date() })).toBe(false);
  });

  test("space aliases cannot be a channel's", () => {
    const space = spaceAliasLocalpart("microdao:daarion");
    expect(space).toBe("space_daarion");
    // A channel slug is [a-z0-9-]: no channel alias holds an underscore.
    expect(aliasLocalpartFor("space", "microdao:daarion")).not.toBe(space);
    expect(groupAliasLocalpart("microdao:daarion", "01a23506-402e-70c4-8968-c89d9f92987c")).toBe("space_daarion_01a23506402e70c48968c89d9f92987c");
  });

  test("a child without via is none; the join rule is restricted to the listed rooms", () => {
    expect(isLiveChild({ via: ["daarion.city"] })).toBe(true);
    expect(isLiveChild({})).toBe(false);
    expect(isLiveChild({ via: [] })).toBe(false);
    expect(isLiveChild(null)).toBe(false);
    expect(spaceJoinRule(["!a"])).toEqual({ join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!a" }] });
  });

  test("canonical JSON ignores key order", () => {
    expect(canonicalJson({ join_rule: "restricted", allow: [{ type: "m.room_membership", room_id: "!a" }] })).toBe(
      canonicalJson({ allow: [{ room_id: "!a", type: "m.room_membership" }], join_rule: "restricted" }),
    );
    expect(canonicalJson({ allow: ["!a", "!b"] })).not.toBe(canonicalJson({ allow: ["!b", "!a"] }));
  });
});
