import { describe, expect, test } from "bun:test";
import { htmlWithPills, mentionCandidates, mentionedInContent } from "../../src/domain/mentions.ts";

const server = "daarion.city";
const sofia = { memberId: "agent:sofia", matrixId: "@agent-sofia:daarion.city", display: "Sofia" };
const bob = { memberId: "matrix:@bob:example.org", matrixId: "@bob:example.org", display: "Bob <b>" };

describe("mentionCandidates", () => {
  test("DAARION ids and Matrix user ids, each once, in order; trailing punctuation may or may not belong", () => {
    expect(mentionCandidates("@agent:sofia, @user:alice. @bob:example.org! @user-carol:daarion.city @agent:sofia", server)).toEqual([
      "agent:sofia",
      "user:alice.",
      "user:alice",
      "matrix:@bob:example.org",
      "user:carol",
    ]);
  });

  test("not inside words, addresses or URLs; not a bare @", () => {
    expect(mentionCandidates("me@agent:sofia https://x.org/@agent:sofia @ alone @@agent:x", server)).toEqual([]);
  });
});

describe("htmlWithPills", () => {
  test("plain text becomes escaped HTML with pills; what trailed a name stays after its pill", () => {
    expect(htmlWithPills("hi @agent:sofia.\n<ok> @agent:other", null, [sofia], server)).toBe(
      'hi <a href="https://matrix.to/#/@agent-sofia:daarion.city">Sofia</a>.<br>&lt;ok&gt; @agent:other',
    );
  });

  test("in the sender's HTML only text outside links changes; display names are escaped", () => {
    expect(
      htmlWithPills("", '<p title="@agent:sofia">@bob:example.org <a href="https://e.org">@agent:sofia</a> @agent:sofia</p>', [sofia, bob], server),
    ).toBe(
      '<p title="@agent:sofia"><a href="https://matrix.to/#/@bob:example.org">Bob &lt;b&gt;</a> <a href="https://e.org">@agent:sofia</a> <a href="https://matrix.to/#/@agent-sofia:daarion.city">Sofia</a></p>',
    );
  });
});

describe("mentionedInContent", () => {
  test("m.mentions.user_ids mapped to member ids; junk and @room ignored", () => {
    expect(
      mentionedInContent({ "m.mentions": { user_ids: ["@agent-sofia:daarion.city", "@bob:example.org", 7, "nope", "@agent-sofia:daarion.city"], room: true } }, server),
    ).toEqual(["agent:sofia", "matrix:@bob:example.org"]);
    expect(mentionedInContent({ "m.mentions": { room: true } }, server)).toEqual([]);
    expect(mentionedInContent({ "m.mentions": ["@a:b"] }, server)).toEqual([]);
    expect(mentionedInContent({ body: "@agent:sofia" }, server)).toEqual([]);
  });
});
