import { describe, expect, test } from "bun:test";
import { PREVIEW_LENGTH, cutAtGrapheme, indexedPreview } from "../../src/domain/preview.ts";

describe("previews", () => {
  test("short text is kept whole; a confidential channel's preview is empty", () => {
    expect(indexedPreview({ is_encrypted: false }, "hello")).toBe("hello");
    expect(indexedPreview({ is_encrypted: true }, "hello")).toBe("");
  });

  test("a long text is cut to PREVIEW_LENGTH code units", () => {
    expect(indexedPreview(null, "x".repeat(PREVIEW_LENGTH + 10))).toBe("x".repeat(PREVIEW_LENGTH));
  });

  test("the cut falls before a grapheme that does not fit whole", () => {
    const family = "👨‍👩‍👧‍👦"; // 11 code units
    expect(cutAtGrapheme(`ab${family}`, 5)).toBe("ab");
    expect(cutAtGrapheme("a😀", 2)).toBe("a");
    expect(cutAtGrapheme(`ab${family}`, 13)).toBe(`ab${family}`);
  });

  test("one grapheme longer than the limit is cut between code points, never inside a surrogate pair", () => {
    const piled = `a${"\u0301".repeat(20)}`;
    expect(cutAtGrapheme(piled, 5)).toBe(piled.slice(0, 5));
    const emojiWithMarks = `😀${"\u0301".repeat(5)}`;
    expect(cutAtGrapheme(emojiWithMarks, 1)).toBe("");
  });
});
