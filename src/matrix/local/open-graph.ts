import { Parser } from "htmlparser2";

/**
 * A page's Open Graph data, the way Synapse's preview_url answers it (og:title, og:description,
 * og:site_name, og:image, og:image:width, og:image:height, og:url), read with htmlparser2: the
 * `<meta property|name=… content=…>` tags, with Twitter's cards and the plain `<title>` and
 * `description` as fallbacks. og:image comes back absolute (resolved against the page), or not
 * at all when it is no http(s) URL.
 */
export function openGraphOf(bytes: Uint8Array, headerCharset: string | null, pageUrl: URL): Record<string, string> {
  let page = scan(decode(bytes, headerCharset));
  // Without a charset in the header, the page's own <meta charset> says how to read it.
  if (!headerCharset && page.charset && !isUtf8(page.charset) && decoderFor(page.charset)) page = scan(decode(bytes, page.charset));
  const meta = page.meta;
  const first = (...keys: string[]) => keys.map((k) => meta.get(k)).find((v) => v !== undefined && v.trim() !== "");
  const og: Record<string, string> = {};
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined) og[key] = value;
  };
  put("og:title", first("og:title", "twitter:title") ?? (page.title.trim() || undefined));
  put("og:description", first("og:description", "twitter:description", "description"));
  put("og:site_name", first("og:site_name", "application-name"));
  put("og:url", first("og:url"));
  const image = absolute(first("og:image", "og:image:url", "og:image:secure_url", "twitter:image", "twitter:image:src"), pageUrl);
  if (image) {
    og["og:image"] = image;
    put("og:image:width", first("og:image:width"));
    put("og:image:height", first("og:image:height"));
  }
  return og;
}

interface Scanned {
  meta: Map<string, string>;
  title: string;
  charset: string | null;
}

const MAX_META = 500;
const MAX_TITLE = 2000;

function scan(html: string): Scanned {
  const meta = new Map<string, string>();
  let title = "";
  let inTitle = false;
  let titleSeen = false;
  let charset: string | null = null;
  const parser = new Parser(
    {
      onopentag(name, attrs) {
        if (name === "title" && !titleSeen) inTitle = true;
        if (name !== "meta") return;
        if (attrs.charset) charset ??= attrs.charset.trim();
        if (attrs["http-equiv"]?.toLowerCase() === "content-type") charset ??= /charset\s*=\s*([^;\s]+)/i.exec(attrs.content ?? "")?.[1] ?? null;
        const key = (attrs.property ?? attrs.name ?? attrs.itemprop)?.trim().toLowerCase();
        // The first of each wins, as in Synapse (a page's later duplicates are usually widgets').
        if (key && attrs.content !== undefined && !meta.has(key) && meta.size < MAX_META) meta.set(key, attrs.content);
      },
      ontext(text) {
        if (inTitle && title.length < MAX_TITLE) title += text;
      },
      onclosetag(name) {
        if (name === "title" && inTitle) {
          inTitle = false;
          titleSeen = true;
        }
      },
    },
    { decodeEntities: true, lowerCaseTags: true, lowerCaseAttributeNames: true },
  );
  parser.write(html);
  parser.end();
  return { meta, title, charset };
}

const isUtf8 = (charset: string) => /^utf-?8$/i.test(charset.trim());

function decoderFor(charset: string): TextDecoder | null {
  try {
    return new TextDecoder(charset.trim() as ConstructorParameters<typeof TextDecoder>[0]);
  } catch {
    return null;
  }
}

function decode(bytes: Uint8Array, charset: string | null): string {
  return (decoderFor(charset ?? "utf-8") ?? new TextDecoder()).decode(bytes);
}

function absolute(link: string | undefined, base: URL): string | null {
  if (!link) return null;
  try {
    const url = new URL(link.trim(), base);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}
