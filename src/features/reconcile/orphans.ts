import { aliasLocalpartFor } from "../../domain/ids.ts";
import { channelCreations, dropChannelCreation } from "../../store/channels.ts";
import { finishChannelCreation, type CreationDeps } from "../channels/creation.ts";

/**
 * A channel creation that never got its channel row (the service died between the room and
 * the row, or Matrix was unreachable and nobody retried): its slug is held, and its room, when
 * one was made, has our alias but no channel.
 */
export interface OrphanCreation {
  channel_id: string;
  slug: string;
  microdao_id: string;
  created_by: string;
  created_at: Date;
  alias: string;
  /** The room the alias names; null when no room was made. */
  room_id: string | null;
  /** With fix: "adopted" (the channel row now exists, with this room), "dropped" (no room: the slug is free), or why not. */
  outcome: "adopted" | "dropped" | `failed: ${string}` | null;
}

/** Finds creations left unfinished and, with fix, adopts their rooms as channels (or frees the slug when no room exists). */
export async function reconcileCreations(deps: CreationDeps, fix: boolean): Promise<OrphanCreation[]> {
  const found: OrphanCreation[] = [];
  for (const creation of await channelCreations(deps.sql)) {
    const alias = `#${aliasLocalpartFor(creation.slug, creation.microdao_id)}:${deps.matrix.serverName}`;
    const orphan: OrphanCreation = { ...creation, alias, room_id: await deps.matrix.resolveAlias(alias), outcome: null };
    if (fix) orphan.outcome = await repair(deps, orphan, creation);
    found.push(orphan);
  }
  return found;
}

async function repair(deps: CreationDeps, orphan: OrphanCreation, creation: Parameters<typeof finishChannelCreation>[1]): Promise<OrphanCreation["outcome"]> {
  try {
    if (orphan.room_id === null) {
      await dropChannelCreation(deps.sql, creation.channel_id);
      return "dropped";
    }
    const channel = await finishChannelCreation(deps, creation);
    orphan.room_id = channel.matrix_room_id;
    return "adopted";
  } catch (err) {
    return `failed: ${err instanceof Error ? err.message : String(err)}`;
  }
}

export function orphanReportLines(orphans: OrphanCreation[]): string[] {
  return orphans.map(
    (o) =>
      `orphan   ${o.alias}  room ${o.room_id ?? "(none)"}: creation of '${o.slug}' by ${o.created_by} at ${o.created_at.toISOString()} has no channel row` +
      (o.outcome ? ` (${o.outcome}${o.outcome === "adopted" ? ` as channel ${o.channel_id}` : ""})` : ""),
  );
}

/** Orphans that a run left as they were. */
export const unresolvedOrphans = (orphans: OrphanCreation[]) => orphans.filter((o) => o.outcome !== "adopted" && o.outcome !== "dropped").length;
