import { describe, expect, test } from "bun:test";
import { mayRead, requireAdmin, requireInviteRight, requireMemberWriteRight, writeRight, type AccessFacts } from "../../src/domain/rights.ts";
import { AppError } from "../../src/errors.ts";

const member = (rights: Partial<NonNullable<AccessFacts["member"]>> = {}) => ({ role: "member", can_read: true, can_write: true, can_invite: false, ...rights });
const facts = (visibility: string, m: AccessFacts["member"], inMicrodao = false, archived = false): AccessFacts => ({
  channel: { visibility, archived_at: archived ? new Date() : null },
  member: m,
  inMicrodao,
});

/** The refusal a rule throws, as `status CODE`; "allowed" when it throws none. */
function refusal(rule: () => unknown): string {
  try {
    rule();
    return "allowed";
  } catch (e) {
    if (!(e instanceof AppError)) throw e;
    return `${e.status} ${e.code}`;
  }
}

describe("who may read", () => {
  test("public: anyone; microdao: members with can_read and the microDAO; private: members with can_read", () => {
    expect(mayRead(facts("public", null))).toBe(true);
    expect(mayRead(facts("microdao", null, true))).toBe(true);
    expect(mayRead(facts("microdao", null, false))).toBe(false);
    expect(mayRead(facts("private", null, true))).toBe(false);
    expect(mayRead(facts("private", member()))).toBe(true);
  });

  test("a member whose can_read was taken away stays out, even of their microDAO's channel", () => {
    expect(mayRead(facts("microdao", member({ can_read: false }), true))).toBe(false);
    expect(mayRead(facts("private", member({ can_read: false })))).toBe(false);
  });
});

describe("who may write, invite and change a channel", () => {
  test("a member writes with can_write; a user's first write joins an open channel; agents must be members", () => {
    expect(writeRight(facts("private", member()), "user:alice")).toEqual({ joinFirst: false });
    expect(writeRight(facts("public", null), "user:alice")).toEqual({ joinFirst: true });
    expect(writeRight(facts("microdao", null, true), "user:alice")).toEqual({ joinFirst: true });
    expect(refusal(() => writeRight(facts("public", null), "agent:sofia"))).toBe("403 FORBIDDEN");
    expect(refusal(() => writeRight(facts("private", member({ can_write: false })), "user:alice"))).toBe("403 FORBIDDEN");
    expect(refusal(() => requireMemberWriteRight(facts("public", null), "user:alice", "react"))).toBe("403 FORBIDDEN");
  });

  test("inviting takes can_invite or an owner's or admin's role; changing the channel an owner or admin", () => {
    expect(refusal(() => requireInviteRight(facts("private", member({ can_invite: true }))))).toBe("allowed");
    expect(refusal(() => requireInviteRight(facts("private", member({ role: "admin" }))))).toBe("allowed");
    expect(refusal(() => requireInviteRight(facts("private", member())))).toBe("403 FORBIDDEN");
    expect(refusal(() => requireAdmin(facts("private", member({ role: "owner" }))))).toBe("allowed");
    expect(refusal(() => requireAdmin(facts("private", member({ can_invite: true }))))).toBe("403 FORBIDDEN");
  });

  test("an archived channel refuses every change with 410, even to its owner", () => {
    const owner = member({ role: "owner", can_invite: true });
    expect(refusal(() => writeRight(facts("private", owner, false, true), "user:owner"))).toBe("410 CHANNEL_ARCHIVED");
    expect(refusal(() => requireInviteRight(facts("private", owner, false, true)))).toBe("410 CHANNEL_ARCHIVED");
    expect(refusal(() => requireAdmin(facts("private", owner, false, true)))).toBe("410 CHANNEL_ARCHIVED");
    expect(mayRead(facts("private", owner, false, true))).toBe(true);
  });
});
