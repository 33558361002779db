import type { ServiceDeps } from "../deps.ts";
import type { ChannelRow } from "../../store/rows.ts";
import { insertChannel, listVisibleChannels, recordChannelEvent, slugTaken, type ChannelPatch } from "../../store/channels.ts";
import { upsertMember } from "../../store/members.ts";
import { aliasLocalpartFor, senderTypeOf, toMatrixUserId } from "../../matrix/mapping.ts";
import { MatrixError } from "../../matrix/port.ts";
import { Subjects } from "../../events/model.ts";
import { AppError, conflict } from "../../errors.ts";
import { readableChannel, requireAdmin } from "../access.ts";
import { callerMicrodaos } from "../../http/auth/scope.ts";
import type { CreateChannelBody } from "./model.ts";
import { unreadCounts } from "../../features/presence/store.ts";

export class ChannelService {
  constructor(private readonly deps: ServiceDeps) {}

  list(callerId: string, microdaoId: string | null, includeArchived = false): Promise<ChannelRow[]> {
    return listVisibleChannels(this.deps.sql, callerId, microdaoId, includeArchived, callerMicrodaos());
  }

  /** The caller's unread messages per channel (see features/presence). */
  unreadCounts(callerId: string, channelIds: string[]): Promise<Map<string, number>> {
    return unreadCounts(this.deps.sql, callerId, channelIds);
  }

  async get(callerId: string, channelId: string): Promise<ChannelRow> {
    return (await readableChannel(this.deps.sql, callerId, channelId)).channel;
  }

  /** Creates the Matrix room first, then the index rows in one transaction. */
  async create(callerId: string, body: CreateChannelBody): Promise<ChannelRow> {
    const { sql, matrix, events, log } = this.deps;
    const visibility = body.visibility ?? "microdao";
    if (await slugTaken(sql, body.slug, body.microdao_id)) {
      throw conflict("SLUG_TAKEN", `channel slug '${body.slug}' already exists in ${body.microdao_id}`);
    }
    const creator = toMatrixUserId(callerId, matrix.serverName);
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
      if (err instanceof MatrixError && err.errcode === "M_ROOM_IN_USE") {
        throw conflict("SLUG_TAKEN", `the room alias for '${body.slug}' is already taken on the homeserver`);
      }
      throw new AppError(502, "MATRIX_UNAVAILABLE", `the Matrix homeserver did not create the room (${errcodeOf(err)})`);
    }
    let channel: ChannelRow;
    try {
      channel = await sql.begin(async (tx) => {
        const row = await insertChannel(tx, {
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
          created_by: callerId,
        });
        await upsertMember(tx, {
          channel_id: row.id,
          member_id: callerId,
          member_type: senderTypeOf(callerId),
          matrix_user_id: creator,
          role: "owner",
          can_read: true,
          can_write: true,
          can_invite: true,
          can_kick: true,
          can_create_tasks: true,
          matrix_power_level: 100,
          invited_by: null,
        });
        await recordChannelEvent(tx, { channel_id: row.id, event_type: "channel.created", actor_id: callerId });
        return row;
      });
    } catch (err) {
      // Lost a race for the same slug: the room just made is left orphaned in Matrix, logged.
      if ((err as { code?: string }).code === "23505") {
        log.warn({ matrix_room_id: room.roomId }, "channel insert lost a slug race; matrix room left orphaned");
        throw conflict("SLUG_TAKEN", `channel slug '${body.slug}' already exists in ${body.microdao_id}`);
      }
      throw err;
    }
    log.info({ channel_id: channel.id, matrix_room_id: channel.matrix_room_id }, "channel created");
    await events.publish(Subjects.channelCreated, {
      event_id: `channel.created:${channel.id}`,
      channel_id: channel.id,
      microdao_id: channel.microdao_id,
      matrix_room_id: channel.matrix_room_id,
      created_by: callerId,
    });
    return channel;
  }

  async update(callerId: string, channelId: string, patch: ChannelPatch): Promise<ChannelRow> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    requireAdmin(access);
    return this.deps.registry.get(channelId).update(callerId, patch);
  }
}

function errcodeOf(err: unknown): string {
  return err instanceof MatrixError ? err.errcode : "M_UNKNOWN";
}
