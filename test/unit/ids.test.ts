import { describe, expect, test } from "bun:test";
import { aliasLocalpartFor, fromMatrixUserId, isServiceUser, senderTypeOf, stripReplyFallback, toMatrixUserId } from "../../src/domain/ids.ts";

describe("DAARION ids and Matrix ids", () => {
  test("a DAARION id maps to a Matrix user in the service's namespace and back", () => {
    expect(toMatrixUserId("user:alice", "daarion.city")).toBe("@user-alice:daarion.city");
    expect(toMatrixUserId("agent:sofia", "daarion.city")).toBe("@agent-sofia:daarion.city");
    expect(fromMatrixUserId("@user-alice:daarion.city", "daarion.city")).toEqual({ id: "user:alice", type: "human" });
    expect(fromMatrixUserId("@agent-sofia:daarion.city", "daarion.city")).toEqual({ id: "agent:sofia", type: "agent" });
  });

  test("a Matrix user outside the namespace, or of another server, keeps its Matrix id behind matrix:", () => {
    expect(fromMatrixUserId("@bob:example.org", "daarion.city")).toEqual({ id: "matrix:@bob:example.org", type: "human" });
    expect(fromMatrixUserId("@user-alice:example.org", "daarion.city")).toEqual({ id: "matrix:@user-alice:example.org", type: "human" });
  });

  test("agents are agents, everyone else human", () => {
    expect([senderTypeOf("agent:sofia"), senderTypeOf("user:alice"), senderTypeOf("matrix:@bob:example.org")]).toEqual(["agent", "human", "human"]);
  });

  test("a channel's alias is its slug and its microDAO's name", () => {
    expect(aliasLocalpartFor("test", "microdao:daarion")).toBe("test-daarion");
  });

  test("the service's own users are @daarion-… of its own server", () => {
    expect(isServiceUser("@daarion-bot:daarion.city", "daarion.city")).toBe(true);
    expect(isServiceUser("@daarion-bot:example.org", "daarion.city")).toBe(false);
    expect(isServiceUser("@user-alice:daarion.city", "daarion.city")).toBe(false);
  });

  test("a reply's quoted fallback lines are dropped, other bodies kept as they are", () => {
    expect(stripReplyFallback("> <@bob:example.org> hi\n> there\n\nmy answer")).toBe("my answer");
    expect(stripReplyFallback("no quote\n> here")).toBe("no quote\n> here");
  });
});
