/** DAARION ids <-> Matrix ids. `user:alice` is `@user-alice:server`, `agent:sofia` is `@agent-sofia:server`. */

export const MICRODAO_ID_PATTERN = "^microdao:[a-z0-9][a-z0-9-]{0,62}$";
export const DAARION_ID_PATTERN = "^(user|agent):[a-z0-9][a-z0-9._-]{0,62}$";
/** A Matrix user outside the service's namespace, as a DAARION member id: `matrix:@bob:example.org`. */
export const MATRIX_MEMBER_PATTERN = "^matrix:@[a-z0-9._=/+-]+:[A-Za-z0-9.-]+(:[0-9]+)?$";

export type SenderType = "human" | "agent";

export function toMatrixUserId(daarion: string, serverName: string): string {
  const [kind, local] = splitId(daarion);
  return `@${kind}-${local}:${serverName}`;
}

export function senderTypeOf(daarion: string): SenderType {
  return daarion.startsWith("agent:") ? "agent" : "human";
}

/**
 * Maps a Matrix sender back to a DAARION id. Users outside the service's namespace keep their
 * Matrix id behind a `matrix:` prefix, e.g. `matrix:@bob:example.org`.
 */
export function fromMatrixUserId(matrixId: string, serverName: string): { id: string; type: SenderType } {
  const m = /^@(user|agent)-([a-z0-9][a-z0-9._-]{0,62}):(.+)$/.exec(matrixId);
  if (m && m[3] === serverName) {
    const id = `${m[1]}:${m[2]}`;
    return { id, type: senderTypeOf(id) };
  }
  return { id: `matrix:${matrixId}`, type: "human" };
}

/** `#{slug}-{microdao suffix}:{server}`: microdao:daarion with slug test gives `#test-daarion:server`. */
export function aliasLocalpartFor(slug: string, microdaoId: string): string {
  const suffix = microdaoId.slice(microdaoId.indexOf(":") + 1);
  return `${slug}-${suffix}`;
}

function splitId(id: string): [string, string] {
  const i = id.indexOf(":");
  return [id.slice(0, i), id.slice(i + 1)];
}

/** The service's own Matrix users (`@daarion-…`): the AS sender and the sync user. Never channel members. */
export function isServiceUser(matrixId: string, serverName: string): boolean {
  return matrixId.startsWith("@daarion-") && matrixId.endsWith(`:${serverName}`);
}

/**
 * Drops a reply fallback (the `> quoted` lines before a blank line that older clients put at
 * the start of a reply's body) so previews show only what was written.
 */
export function stripReplyFallback(body: string): string {
  if (!body.startsWith("> ")) return body;
  const lines = body.split("\n");
  let i = 0;
  while (i < lines.length && lines[i]!.startsWith(">")) i++;
  if (i < lines.length && lines[i] === "") i++;
  return lines.slice(i).join("\n");
}
