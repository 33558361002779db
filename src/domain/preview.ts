/** How much of a message's text the index keeps, in UTF-16 code units (what PostgreSQL and JSON clients count). */
export const PREVIEW_LENGTH = 500;

const graphemes = new Intl.Segmenter(undefined, { granularity: "grapheme" });

/**
 * The index's preview of a message's plain text: nothing for a confidential (encrypted)
 * channel, whose content the service must not keep; otherwise at most PREVIEW_LENGTH code
 * units, cut before the first grapheme that does not fit whole, so no emoji (a surrogate pair,
 * a ZWJ family, a flag) or accented letter is cut in half. Every preview is made here.
 */
export function indexedPreview(channel: { is_encrypted: boolean } | null | undefined, text: string): string {
  return channel?.is_encrypted ? "" : cutAtGrapheme(text, PREVIEW_LENGTH);
}

export function cutAtGrapheme(text: string, maxLength: number): string {
  if (text.length <= maxLength) return text;
  let end = 0;
  for (const { index, segment } of graphemes.segment(text)) {
    if (index + segment.length > maxLength) break;
    end = index + segment.length;
  }
  // One grapheme longer than the whole preview (a letter under hundreds of combining marks):
  // cut it between code points instead, never inside a surrogate pair.
  if (end === 0) end = isHighSurrogate(text.charCodeAt(maxLength - 1)) ? maxLength - 1 : maxLength;
  return text.slice(0, end);
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;
