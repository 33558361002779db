import type { ServiceDeps } from "../deps.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { dropChannelCreation, findChannel, insertChannel, type ChannelCreation } from "../../store/channels.ts";
import { recordChannelEvent } from "../../store/channel-events.ts";
import { upsertMember } from "../../store/members.ts";
import { aliasLocalpartFor, toMatrixUserId } from "../../domain/ids.ts";
import { membershipRecord, OWNER_RIGHTS } from "../../domain/member-rights.ts";
import { MatrixError } from "../../matrix/port.ts";
import { Subjects } from "../../events/model.ts";
import { AppError, conflict } from "../../errors.ts";
import type { CreateChannelBody } from "./model.ts";
import { syncSpaceQuietly } from "../spaces/sync.ts";

export type CreationDeps = Pick<ServiceDeps, "sql" | "matrix" | "events" | "log">;

export const slugTakenError = (slug: string, microdaoId: string) =>
  conflict("SLUG_TAKEN", `channel slug '${slug}' already exists in ${microdaoId}`);

/**
 * Finishes a recorded creation: the room (made, or found by its alias when an earlier attempt
 * made it), then the channel row, its owner and the audit row in one transaction that also
 * drops the record. Safe to run again, and by more than one caller at once: every run ends
 * with the one channel of this id.
 */
export async function finishChannelCreation(deps: CreationDeps, creation: ChannelCreation): Promise<ChannelRow> {
  const { sql, matrix, log } = deps;
  const body = creation.request as CreateChannelBody;
  const visibility = body.visibility ?? "microdao";
  const creator = toMatrixUserId(creation.created_by, matrix.serverName);
  let room: { roomId: string; alias: string };
  try {
    await matrix.ensureUser(creator);
    room = await matrix.createRoom({
      creator,
      aliasLocalpart: aliasLocalpartFor(body.slug, body.microdao_id),
      name: body.name,
      topic: body.topic ?? body.description ?? null,
      visibility,
      isEncrypted: body.is_encrypted ?? false,
      isDirect: false,
    });
  } catch (err) {
    const refused = err instanceof MatrixError && err.httpStatus < 500;
    // Refused for good: no room was made, and the slug is free again. Unreachable: the room may
    // exist, so the record stays for the retry (or reconcile) to finish.
    if (refused) await dropChannelCreation(sql, creation.channel_id);
    if (err instanceof MatrixError && err.errcode === "M_ROOM_IN_USE") {
      throw conflict("SLUG_TAKEN", `the room alias for '${body.slug}' is already taken on the homeserver`);
    }
    throw new AppError(502, "MATRIX_UNAVAILABLE", `the Matrix homeserver did not create the room (${errcodeOf(err)})`);
  }
  let channel: ChannelRow;
  try {
    channel = await sql.begin(async (tx) => {
      const row = await insertChannel(tx, {
        id: creation.channel_id,
        slug: body.slug,
        name: body.name,
        description: body.description ?? null,
        // The room's topic: Element shows it, and it defaults to the description.
        topic: body.topic ?? body.description ?? null,
        microdao_id: body.microdao_id,
        matrix_room_id: room.roomId,
        matrix_alias: room.alias,
        visibility,
        is_encrypted: body.is_encrypted ?? false,
        created_by: creation.created_by,
      });
      await upsertMember(
        tx,
        membershipRecord({ channelId: row.id, memberId: creation.created_by, matrixUserId: creator, rights: OWNER_RIGHTS, powerLevel: 100, invitedBy: null }),
      );
      await recordChannelEvent(tx, { channel_id: row.id, event_type: "channel.created", actor_id: creation.created_by });
      await dropChannelCreation(tx, row.id);
      return row;
    });
  } catch (err) {
    if ((err as { code?: string }).code !== "23505") throw err;
    // Another run of this same creation finished first: its channel is the answer.
    const made = await findChannel(sql, creation.channel_id);
    if (made) return made;
    await dropChannelCreation(sql, creation.channel_id);
    log.warn({ matrix_room_id: room.roomId }, "channel insert lost a slug race; matrix room left orphaned");
    throw slugTakenError(body.slug, body.microdao_id);
  }
  log.info({ channel_id: channel.id, matrix_room_id: channel.matrix_room_id }, "channel created");
  await announceChannelCreated(deps, channel);
  // The microDAO's space: made with its first channel, and every channel joins it.
  await syncSpaceQuietly(deps, channel.microdao_id);
  return channel;
}

/** messaging.channel.created; its event id is the channel's, so announcing again (a rerun) is deduplicated. */
export async function announceChannelCreated(deps: CreationDeps, channel: ChannelRow): Promise<void> {
  await deps.events.publish(Subjects.channelCreated, {
    event_id: `channel.created:${channel.id}`,
    channel_id: channel.id,
    microdao_id: channel.microdao_id,
    matrix_room_id: channel.matrix_room_id,
    created_by: channel.created_by,
  });
}

function errcodeOf(err: unknown): string {
  return err instanceof MatrixError ? err.errcode : "M_UNKNOWN";
}
