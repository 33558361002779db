import type { Sql, Tx } from "../../store/db.ts";
import { MatrixError } from "../port.ts";
import { randomToken } from "./rows.ts";

// Room state and membership as the local backend's writers check them, inside their transaction.

export async function requireRoom(tx: Sql | Tx, roomId: string) {
  const [room] = await tx`select 1 from local_matrix_rooms where room_id = ${roomId}`;
  if (!room) throw new MatrixError("M_NOT_FOUND", "Unknown room", 404);
}

export async function stateContent(tx: Sql | Tx, roomId: string, type: string, stateKey: string): Promise<Record<string, unknown> | null> {
  const [row] = await tx`
    select content from local_matrix_state where room_id = ${roomId} and type = ${type} and state_key = ${stateKey}`;
  return (row?.content as Record<string, unknown> | undefined) ?? null;
}

export async function membershipOf(tx: Tx, roomId: string, userId: string): Promise<string | null> {
  const [row] = await tx`
    select content->>'membership' as membership from local_matrix_state
    where room_id = ${roomId} and type = 'm.room.member' and state_key = ${userId}`;
  return (row?.membership as string | undefined) ?? null;
}

export async function requireMembership(tx: Tx, roomId: string, userId: string, allowed: string[]) {
  await requireRoom(tx, roomId);
  const membership = await membershipOf(tx, roomId, userId);
  if (!membership || !allowed.includes(membership)) {
    throw new MatrixError("M_FORBIDDEN", `User ${userId} not in room ${roomId}`, 403);
  }
}

/** As Synapse does: one annotation per sender, target and key; a redacted one no longer counts. */
export async function refuseDuplicateAnnotation(tx: Tx, roomId: string, sender: string, content: Record<string, unknown>) {
  const rel = content["m.relates_to"] as { rel_type?: unknown; event_id?: unknown; key?: unknown } | undefined;
  if (rel?.rel_type !== "m.annotation" || typeof rel.event_id !== "string" || typeof rel.key !== "string") return;
  const [dup] = await tx`
    select 1 from local_matrix_events
    where room_id = ${roomId} and sender = ${sender} and type = 'm.reaction'
      and content->'m.relates_to'->>'rel_type' = 'm.annotation'
      and content->'m.relates_to'->>'event_id' = ${rel.event_id}
      and content->'m.relates_to'->>'key' = ${rel.key}`;
  if (dup) throw new MatrixError("M_DUPLICATE_ANNOTATION", "Can't send same reaction twice", 400);
}

export async function insertEvent(
  tx: Tx,
  roomId: string,
  sender: string,
  type: string,
  content: Record<string, unknown>,
  opts: { stateKey?: string; txnId?: string },
): Promise<string> {
  const eventId = `$${randomToken(32)}`;
  await tx`
    insert into local_matrix_events (event_id, room_id, sender, type, state_key, content, origin_server_ts, txn_id)
    values (${eventId}, ${roomId}, ${sender}, ${type}, ${opts.stateKey ?? null}, ${tx.json(content as never)},
            ${Date.now()}, ${opts.txnId ?? null})`;
  if (opts.stateKey !== undefined) {
    await tx`
      insert into local_matrix_state (room_id, type, state_key, event_id, content)
      values (${roomId}, ${type}, ${opts.stateKey}, ${eventId}, ${tx.json(content as never)})
      on conflict (room_id, type, state_key) do update set event_id = excluded.event_id, content = excluded.content`;
  }
  return eventId;
}

/** A user's power level in a room's m.room.power_levels content. */
export function powerOf(levels: Record<string, unknown> | null, user: string): number {
  const users = (levels?.users ?? {}) as Record<string, unknown>;
  const own = users[user];
  if (typeof own === "number") return own;
  return typeof levels?.users_default === "number" ? levels.users_default : 0;
}
