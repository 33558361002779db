import sanitizeHtml from "sanitize-html";

/**
 * The HTML the Matrix spec suggests clients permit in `org.matrix.custom.html`
 * (client-server API, "m.room.message msgtypes"). Anything else goes: tags outside the list
 * are dropped (their text stays; script, style and the like go with their content), as are
 * attributes outside it, links other than http(s), ftp, mailto and magnet (so `javascript:`),
 * and images other than mxc://.
 */
const MATRIX_HTML: sanitizeHtml.IOptions = {
  allowedTags: [
    "font", "del", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "p", "a", "ul", "ol", "sup", "sub", "li",
    "b", "i", "u", "strong", "em", "s", "code", "hr", "br", "div", "table", "thead", "tbody", "tr", "th", "td",
    "caption", "pre", "span", "img", "details", "summary",
  ],
  allowedAttributes: {
    font: ["data-mx-bg-color", "data-mx-color", "color"],
    span: ["data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"],
    a: ["name", "target", "href"],
    img: ["width", "height", "alt", "title", "src"],
    ol: ["start"],
    div: ["data-mx-maths"],
  },
  allowedClasses: { code: ["language-*"] },
  allowedSchemes: ["https", "http", "ftp", "mailto", "magnet"],
  allowedSchemesByTag: { img: ["mxc"] },
  allowedSchemesAppliedToAttributes: ["href", "src"],
  allowProtocolRelative: false,
  // An image whose src went (not mxc://) shows nothing: drop it.
  exclusiveFilter: (frame) => frame.tag === "img" && !frame.attribs.src,
  transformTags: {
    font: (tagName, attribs) => ({ tagName, attribs: withHexColors(attribs) }),
    span: (tagName, attribs) => ({ tagName, attribs: withHexColors(attribs) }),
    // A relative src has no scheme to check: only mxc:// images are kept.
    img: (tagName, attribs) => {
      const kept = { ...attribs };
      if (!/^mxc:\/\//i.test(kept.src ?? "")) delete kept.src;
      return { tagName, attribs: kept };
    },
  },
  // A reply fallback (mx-reply) quotes another message; clients strip it, and so do previews.
  nonTextTags: ["script", "style", "textarea", "option", "noscript", "mx-reply"],
};

/** The spec's colours are 6-digit hex codes, which clients turn into CSS: nothing else may reach it. */
function withHexColors(attribs: sanitizeHtml.Attributes): sanitizeHtml.Attributes {
  const kept = { ...attribs };
  for (const name of ["data-mx-color", "data-mx-bg-color"]) {
    if (kept[name] !== undefined && !/^#[0-9a-f]{6}$/i.test(kept[name])) delete kept[name];
  }
  return kept;
}

/** `html` reduced to the Matrix allow-list. */
export function sanitizeMatrixHtml(html: string): string {
  return sanitizeHtml(html, MATRIX_HTML);
}

/** For what the API takes in: the sanitised HTML, or null when nothing is left of it. */
export function safeFormattedBody(html: string | null | undefined): string | null {
  if (!html) return null;
  const safe = sanitizeMatrixHtml(html);
  return safe.trim() === "" ? null : safe;
}

/**
 * Event content as API clients may see it: `formatted_body` (and an edit's
 * `m.new_content.formatted_body`) sanitised, since Matrix users' clients send whatever HTML they like.
 */
export function withSafeHtml(content: Record<string, unknown>): Record<string, unknown> {
  const safe = withSafeFormattedBody(content);
  const replacement = content["m.new_content"];
  if (replacement && typeof replacement === "object" && !Array.isArray(replacement)) {
    safe["m.new_content"] = withSafeFormattedBody(replacement as Record<string, unknown>);
  }
  return safe;
}

function withSafeFormattedBody(content: Record<string, unknown>): Record<string, unknown> {
  const formatted = content.formatted_body;
  return typeof formatted === "string" ? { ...content, formatted_body: sanitizeMatrixHtml(formatted) } : { ...content };
}
