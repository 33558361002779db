import type { LinkPreview } from "../wire/link-preview.ts";
import { cutAtGrapheme } from "./preview.ts";
import { MAX_PREVIEW_URL_LENGTH } from "./fetch-guard.ts";

/**
 * Which link of a message gets a preview, and what a preview holds (README "Link previews").
 * Pure rules; fetching is the Matrix backend's (Synapse's preview_url, or the built-in fetcher)
 * and the preview worker's (src/features/previews).
 */

/**
 * MSC4095 (bundled URL previews): the content's list of previews, stable name first, then the
 * unstable prefix clients send today. An empty list means "no previews"; a list means "do not
 * look for links in the body".
 */
export const BUNDLED_PREVIEW_KEYS = ["m.url_previews", "com.beeper.linkpreviews"] as const;
/** What an API send that opts out (`link_preview: false`) carries in Matrix, so MSC4095 clients show none either. */
export const NO_PREVIEWS_KEY = "com.beeper.linkpreviews";
/** Text-like messages get previews; a file's caption does not (the message is the file). */
export const PREVIEW_MSGTYPES: ReadonlySet<string> = new Set(["m.text", "m.notice", "m.emote"]);

export const TITLE_LENGTH = 300;
export const DESCRIPTION_LENGTH = 1000;
export const SITE_NAME_LENGTH = 200;

/** What a message asks for: nothing, a preview to fetch for a link, or one its sender bundled. */
export type PreviewWanted =
  | { kind: "none" }
  | { kind: "fetch"; url: string }
  | { kind: "bundled"; url: string; preview: LinkPreview };

const NONE: PreviewWanted = { kind: "none" };

/** A message row's preview columns (migration 023). */
export interface PreviewColumns {
  link_preview_url: string | null;
  link_preview: LinkPreview | null;
  link_previews_off: boolean;
}

/** What a message's row keeps of what it wants: the link, a bundled preview at once, the sender's no. */
export function previewColumns(wanted: PreviewWanted, off: boolean): PreviewColumns {
  return {
    link_preview_url: wanted.kind === "none" ? null : wanted.url,
    link_preview: wanted.kind === "bundled" ? wanted.preview : null,
    link_previews_off: off,
  };
}

/** An MSC4095 list that is empty: the sender's client says "no previews". */
export const saysNoPreviews = (content: Record<string, unknown> | null | undefined) => bundledList(content)?.length === 0;

const LINK = /\bhttps?:\/\/[^\s<>"'`\u0000-\u001f\u007f]+/gi;
const TRAILING = /[.,;:!?'"*_~]$/;
const CLOSERS: Record<string, string> = { ")": "(", "]": "[", "}": "{" };

/** Permalinks and pills (matrix.to) are Matrix's own links, not pages: Element shows no preview for them either. */
const isMatrixLink = (url: URL) => url.hostname === "matrix.to";

/**
 * The http(s) links of a text in order, as a reader sees them: a sentence's punctuation after a
 * link (`https://example.org.`) or an unbalanced closing bracket (`(see https://x.org/a)`) is
 * not part of it.
 */
export function linksIn(text: string): string[] {
  const links: string[] = [];
  for (const match of text.matchAll(LINK)) {
    let link = match[0];
    for (;;) {
      const last = link.at(-1)!;
      const opener = CLOSERS[last];
      if (TRAILING.test(last)) link = link.slice(0, -1);
      else if (opener && count(link, last) > count(link, opener)) link = link.slice(0, -1);
      else break;
    }
    const url = parseLink(link);
    if (url && !isMatrixLink(url)) links.push(link);
  }
  return links;
}

const count = (s: string, c: string) => s.split(c).length - 1;

function parseLink(link: string): URL | null {
  if (link.length > MAX_PREVIEW_URL_LENGTH) return null;
  try {
    const url = new URL(link);
    return (url.protocol === "http:" || url.protocol === "https:") && url.hostname ? url : null;
  } catch {
    return null;
  }
}

/**
 * The preview a message wants. None in a confidential channel, for a sender who opted out, for
 * a message that is not text, or when the content's MSC4095 list is empty. With a list, its
 * first usable entry decides: bundled Open Graph data is used as it is (the sender's client
 * fetched it), an entry with only a URL is fetched; without one, the first link of the body is.
 */
export function wantedPreview(input: {
  body: string;
  msgtype: string | null;
  encrypted: boolean;
  optOut?: boolean;
  content?: Record<string, unknown> | null;
}): PreviewWanted {
  if (input.encrypted || input.optOut || !input.msgtype || !PREVIEW_MSGTYPES.has(input.msgtype)) return NONE;
  const bundled = bundledList(input.content);
  if (bundled) return fromBundled(bundled);
  const [first] = linksIn(input.body);
  return first ? { kind: "fetch", url: first } : NONE;
}

/** The content's MSC4095 list (stable name first), or null when it has none. */
export function bundledList(content: Record<string, unknown> | null | undefined): unknown[] | null {
  for (const key of BUNDLED_PREVIEW_KEYS) {
    const value = content?.[key];
    if (Array.isArray(value)) return value;
  }
  return null;
}

function fromBundled(list: unknown[]): PreviewWanted {
  for (const entry of list) {
    if (!entry || typeof entry !== "object" || Array.isArray(entry)) continue;
    const og = entry as Record<string, unknown>;
    const matched = text(og["matrix:matched_url"]) ?? text(og["matched_url"]);
    const link = [matched, text(og["og:url"])].find((candidate) => candidate && parseLink(candidate) && !isMatrixLink(parseLink(candidate)!));
    if (!link) continue;
    const preview = fromOpenGraph(link, og);
    return preview ? { kind: "bundled", url: link, preview } : { kind: "fetch", url: link };
  }
  return NONE;
}

/**
 * A preview from Open Graph data as Synapse's preview_url answers it (and MSC4095 bundles it):
 * og:title, og:description, og:site_name, og:image (an mxc:// URI), og:image:width and
 * og:image:height. Null when it shows nothing (no title, description or image). Texts are
 * tidied (whitespace collapsed, control characters dropped) and cut at a whole grapheme.
 */
export function fromOpenGraph(url: string, og: Record<string, unknown>): LinkPreview | null {
  const title = tidy(og["og:title"], TITLE_LENGTH);
  const description = tidy(og["og:description"], DESCRIPTION_LENGTH);
  const image = text(og["og:image"]);
  const imageUrl = image && isMxcUri(image) ? image : null;
  if (!title && !description && !imageUrl) return null;
  return {
    url,
    title,
    description,
    site_name: tidy(og["og:site_name"], SITE_NAME_LENGTH),
    image_url: imageUrl,
    image_width: imageUrl ? dimension(og["og:image:width"]) : null,
    image_height: imageUrl ? dimension(og["og:image:height"]) : null,
  };
}

/** `mxc://server/mediaId`, as the media repository names its files. */
export const isMxcUri = (uri: string) => /^mxc:\/\/[A-Za-z0-9.:-]+\/[A-Za-z0-9_-]+$/.test(uri);

const text = (value: unknown): string | null => (typeof value === "string" && value.length > 0 ? value : null);

function tidy(value: unknown, max: number): string | null {
  if (typeof value !== "string") return null;
  const clean = value.replace(/[\u0000-\u001f\u007f]+/g, " ").replace(/\s+/g, " ").trim();
  return clean ? cutAtGrapheme(clean, max) : null;
}

function dimension(value: unknown): number | null {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isInteger(n) && n > 0 && n <= 100_000 ? n : null;
}
