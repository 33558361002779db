import { fromMatrixUserId } from "./ids.ts";

/**
 * Mentions in what is sent through the API: `@user:alice`, `@agent:sofia` (a DAARION member id)
 * or a Matrix user id (`@bob:example.org`, `@user-alice:server`). Whether a candidate is a
 * mention is for the channel's members to decide; these rules only find and write them.
 */

/** The most members one message may mention (the explicit list, or what its text names). */
export const MAX_MENTIONS = 50;

// A DAARION id first (so `@user:alice` is never read as a Matrix id with localpart "user"), then
// a Matrix user id. Not inside a word or an address (`bob@user:x`).
const TOKEN = /(?<![\w@:/.-])@(?:(?:user|agent):[a-z0-9][a-z0-9._-]{0,62}|[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(?::[0-9]{1,5})?)/g;
/** What a sentence puts after a name: `@agent:sofia.` names agent:sofia. */
const TRAILING = /[._-]+$/;

/** The member ids a token may name: itself, and itself without trailing punctuation. */
function idsOf(token: string, serverName: string): string[] {
  const bare = token.slice(1);
  const forms = [bare, bare.replace(TRAILING, "")].filter((f, i, all) => f !== "" && all.indexOf(f) === i);
  return forms.map((form) => (/^(user|agent):/.test(form) ? form : fromMatrixUserId(`@${form}`, serverName).id));
}

/** Every member id the text may mention, in order of appearance, each once. */
export function mentionCandidates(text: string, serverName: string): string[] {
  const ids = new Set<string>();
  for (const [token] of text.matchAll(TOKEN)) for (const id of idsOf(token, serverName)) ids.add(id);
  return [...ids];
}

/** A member a message mentions: who, as whom Matrix knows them, and the pill's text. */
export interface Mention {
  memberId: string;
  matrixId: string;
  display: string;
}

const escapeHtml = (s: string) => s.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;").replaceAll('"', "&quot;");

/** The link Matrix clients (Element) show as a pill. */
export const pill = (m: Mention) => `<a href="https://matrix.to/#/${escapeHtml(m.matrixId)}">${escapeHtml(m.display)}</a>`;

/** Replaces each token naming one of `mentions` with its pill (and what trailed it), in plain text already escaped for HTML. */
function withPills(text: string, byId: Map<string, Mention>, serverName: string): string {
  return text.replace(TOKEN, (token) => {
    const bare = token.slice(1);
    const [full, trimmed] = idsOf(token, serverName);
    const hit = byId.get(full!) ?? (trimmed ? byId.get(trimmed) : undefined);
    if (!hit) return token;
    const rest = byId.has(full!) ? "" : bare.slice(bare.replace(TRAILING, "").length);
    return pill(hit) + rest;
  });
}

/**
 * The HTML of a message with mentions: the sender's (sanitised) HTML, or the text made HTML,
 * with every mention written as a pill. Only text between tags is touched, never a tag, an
 * attribute or the inside of a link the sender wrote.
 */
export function htmlWithPills(text: string, formattedBody: string | null, mentions: Mention[], serverName: string): string {
  const byId = new Map(mentions.map((m) => [m.memberId, m]));
  if (formattedBody === null) return withPills(escapeHtml(text), byId, serverName).replaceAll("\n", "<br>");
  let inLink = 0;
  return formattedBody
    .split(/(<[^>]*>)/)
    .map((part) => {
      if (part.startsWith("<")) {
        if (/^<a[\s>]/i.test(part)) inLink++;
        else if (/^<\/a\s*>/i.test(part)) inLink = Math.max(0, inLink - 1);
        return part;
      }
      return inLink > 0 ? part : withPills(part, byId, serverName);
    })
    .join("");
}

/** The member ids an event's `m.mentions` names (intentional mentions, Matrix v1.7), in its order, each once. */
export function mentionedInContent(content: Record<string, unknown>, serverName: string): string[] {
  const mentions = content["m.mentions"];
  if (!mentions || typeof mentions !== "object" || Array.isArray(mentions)) return [];
  const userIds = (mentions as { user_ids?: unknown }).user_ids;
  if (!Array.isArray(userIds)) return [];
  const ids = new Set<string>();
  for (const userId of userIds.slice(0, MAX_MENTIONS * 2)) {
    if (typeof userId === "string" && /^@[^:]+:.+$/.test(userId)) ids.add(fromMatrixUserId(userId, serverName).id);
  }
  return [...ids];
}
