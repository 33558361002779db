// A microDAO's Matrix space: pure rules (no I/O) for what its rooms' state should say.

/** `m.space.child` `order`: 1 to 50 characters of printable ASCII (0x20–0x7E), compared lexicographically. */
export const SPACE_ORDER_PATTERN = "^[\\x20-\\x7E]{1,50}$";

export function validSpaceOrder(order: unknown): order is string {
  return typeof order === "string" && new RegExp(SPACE_ORDER_PATTERN).test(order);
}

/** The default order of a channel or group: its creation instant, so new ones come last. */
export function defaultSpaceOrder(createdAt: Date): string {
  return createdAt.toISOString();
}

/** The space room's alias localpart; channel aliases (`slug-microdao`) never hold an underscore. */
export function spaceAliasLocalpart(microdaoId: string): string {
  return `space_${microdaoId.slice(microdaoId.indexOf(":") + 1)}`;
}

/** A group's alias localpart: the space's, and the group id. */
export function groupAliasLocalpart(microdaoId: string, groupId: string): string {
  return `${spaceAliasLocalpart(microdaoId)}_${groupId.replaceAll("-", "")}`;
}

/** The space's name: the microDAO's id without its `microdao:` prefix (the index holds no microDAO names). */
export function spaceNameFor(microdaoId: string): string {
  return microdaoId.slice(microdaoId.indexOf(":") + 1);
}

/**
 * Whether a channel is a child of its microDAO's space: public and microdao channels are,
 * private and archived ones are not (a private channel is not advertised in the space).
 */
export function advertisedInSpace(channel: { visibility: string; archived_at: Date | null }): boolean {
  return channel.archived_at === null && channel.visibility !== "private";
}

/** The content of an m.space.child (or m.space.parent) naming a room on this server; `{}` removes it. */
export function childContent(serverName: string, order: string | null): Record<string, unknown> {
  return order === null ? { via: [serverName] } : { via: [serverName], order };
}

/** A space's join rule: restricted to the members of the rooms it advertises (and its parent space, for a group). */
export function spaceJoinRule(allowRoomIds: string[]): Record<string, unknown> {
  return { join_rule: "restricted", allow: allowRoomIds.map((room_id) => ({ type: "m.room_membership", room_id })) };
}

/** Whether a state content is a live m.space.child: the spec says a child without a `via` list is none. */
export function isLiveChild(content: Record<string, unknown> | null | undefined): boolean {
  return Array.isArray(content?.via) && (content.via as unknown[]).length > 0;
}

/**
 * The spec's ordering of a space's children: those with a valid `order` first, by that string
 * (then room id), then the others by room id (the spec's fallback is the event's timestamp,
 * which the index does not keep; every child the service writes has an order).
 */
export function compareSpaceChildren(a: { order: string | null; room_id: string }, b: { order: string | null; room_id: string }): number {
  const ao = validSpaceOrder(a.order) ? a.order : null;
  const bo = validSpaceOrder(b.order) ? b.order : null;
  if (ao !== null && bo === null) return -1;
  if (ao === null && bo !== null) return 1;
  if (ao !== null && bo !== null && ao !== bo) return ao < bo ? -1 : 1;
  return a.room_id < b.room_id ? -1 : a.room_id > b.room_id ? 1 : 0;
}

/** JSON with object keys sorted at every level: two contents compare equal whatever order a store kept their keys in. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === "object" && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : v,
  );
}
