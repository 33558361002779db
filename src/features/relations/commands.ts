import { refuseIfEncrypted } from "../../domain/confidential.ts";
import { indexedPreview } from "../../domain/preview.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { MatrixError } from "../../matrix/port.ts";
import { senderTypeOf } from "../../domain/ids.ts";
import { AppError, forbidden, notFound } from "../../errors.ts";
import type { MessageRow } from "../../store/rows.ts";
import { findMessage } from "../../store/messages.ts";
import { findMember } from "../../store/members.ts";
import { announceDeletion, announceEdit, announceReaction } from "./announce.ts";
import { findReaction, markReactionRemoved, reactionCount, upsertReaction } from "../../store/reactions.ts";
import { markMessageDeleted, recordEdit } from "../../store/edits.ts";
import type { MessageView } from "../messages/model.ts";
import type { ReactionResult } from "./model.ts";
import { replaceEditMentions, sendMentions, withMentions } from "../../channel/mentions.ts";
import { editedPreviewOf } from "../../channel/link-previews.ts";
import { retargetPreview } from "../../store/link-previews.ts";
import { NO_PREVIEWS_KEY } from "../../domain/link-previews.ts";

/** Media messages keep their url and info in Matrix; only text can be replaced here. */
const EDITABLE_MSGTYPES = ["m.text", "m.notice", "m.emote"];

/** A message of this channel that is in Matrix and not deleted: unknown and deleted are 404. */
async function deliveredMessage(ctx: ChannelContext, messageId: string): Promise<MessageRow & { matrix_event_id: string }> {
  const message = await findMessage(ctx.deps.sql, ctx.channelId, messageId);
  if (!message || message.deleted_at || message.delivery_state === "failed") throw notFound("message");
  if (!message.matrix_event_id) throw new AppError(409, "MESSAGE_PENDING", "the message is not in Matrix yet; try again shortly");
  return message as MessageRow & { matrix_event_id: string };
}

async function addReaction(ctx: ChannelContext, cmd: { messageId: string; reactorId: string; emoji: string; joinFirst: boolean }): Promise<ReactionResult> {
  const { sql, matrix } = ctx.deps;
  const message = await deliveredMessage(ctx, cmd.messageId);
  const result = async (): Promise<ReactionResult> => ({
    message_id: message.id,
    emoji: cmd.emoji,
    count: await reactionCount(sql, message.id, cmd.emoji),
    me: true,
  });
  const existing = await findReaction(sql, message.id, cmd.reactorId, cmd.emoji);
  if (existing && !existing.removed_at) return result();
  if (cmd.joinFirst) await ctx.joinPublic(cmd.reactorId);
  const reactor = ctx.matrixId(cmd.reactorId);
  const content = { "m.relates_to": { rel_type: "m.annotation", event_id: message.matrix_event_id, key: cmd.emoji } };
  const sent = await ctx.matrixCall(async () => {
    await matrix.ensureUser(reactor);
    try {
      return await matrix.sendEvent(ctx.room, reactor, "m.reaction", content, Bun.randomUUIDv7());
    } catch (err) {
      // Matrix already has this reaction (sent before a crash, say): the sync poller indexes it.
      if (err instanceof MatrixError && err.errcode === "M_DUPLICATE_ANNOTATION") return null;
      throw err;
    }
  });
  if (!sent) return result();
  const row = await upsertReaction(sql, {
    message_id: message.id,
    reactor_id: cmd.reactorId,
    reactor_type: senderTypeOf(cmd.reactorId),
    emoji: cmd.emoji,
    matrix_event_id: sent.eventId,
    created_at: new Date(),
  });
  if (row) await announceReaction(ctx, "added", row);
  return result();
}

/** Idempotent: removing a reaction the caller does not have answers the same as removing it. */
async function removeReaction(ctx: ChannelContext, cmd: { messageId: string; reactorId: string; emoji: string }): Promise<ReactionResult> {
  const { sql, matrix } = ctx.deps;
  const message = await deliveredMessage(ctx, cmd.messageId);
  const existing = await findReaction(sql, message.id, cmd.reactorId, cmd.emoji);
  if (existing && !existing.removed_at) {
    await ctx.matrixCall(() => matrix.redact(ctx.room, ctx.matrixId(cmd.reactorId), existing.matrix_event_id, Bun.randomUUIDv7()));
    const removed = await markReactionRemoved(sql, existing.id);
    if (removed) await announceReaction(ctx, "removed", removed);
  }
  return { message_id: message.id, emoji: cmd.emoji, count: await reactionCount(sql, message.id, cmd.emoji), me: false };
}

async function editMessage(
  ctx: ChannelContext,
  cmd: { messageId: string; editorId: string; text: string; formattedBody: string | null; mentions?: string[] | null; linkPreview?: boolean },
): Promise<MessageView> {
  const { sql, matrix } = ctx.deps;
  refuseIfEncrypted(ctx.channel);
  const message = await deliveredMessage(ctx, cmd.messageId);
  if (message.sender_id !== cmd.editorId) throw forbidden("only the sender may edit a message");
  const member = await findMember(sql, ctx.channelId, cmd.editorId);
  if (member && !member.can_write) throw forbidden("you may not write in this channel");
  const msgtype = message.msgtype ?? "m.text";
  if (!EDITABLE_MSGTYPES.includes(msgtype)) throw new AppError(400, "NOT_EDITABLE", `a ${msgtype} message cannot be edited`);
  const mentions = await sendMentions(ctx, cmd.editorId, cmd.text, cmd.mentions);
  const newContent: Record<string, unknown> = { msgtype, body: cmd.text };
  if (cmd.formattedBody) Object.assign(newContent, { format: "org.matrix.custom.html", formatted_body: cmd.formattedBody });
  withMentions(newContent, cmd.text, cmd.formattedBody, mentions, matrix.serverName);
  const previewsOff = cmd.linkPreview === undefined ? message.link_previews_off : !cmd.linkPreview;
  if (previewsOff) newContent[NO_PREVIEWS_KEY] = [];
  // Clients without edits show the fallback: the new text marked with "* ".
  const content: Record<string, unknown> = { msgtype, body: `* ${cmd.text}` };
  const formatted = typeof newContent.formatted_body === "string" ? newContent.formatted_body : null;
  if (formatted) Object.assign(content, { format: "org.matrix.custom.html", formatted_body: `* ${formatted}` });
  // The edit event itself mentions only the newly mentioned (so clients notify them alone); m.new_content has them all.
  if (mentions.length > 0 || message.mentions.length > 0) {
    content["m.mentions"] = { user_ids: mentions.filter((m) => !message.mentions.includes(m.memberId)).map((m) => m.matrixId) };
  }
  content["m.new_content"] = newContent;
  content["m.relates_to"] = { rel_type: "m.replace", event_id: message.matrix_event_id };
  const { eventId } = await ctx.matrixCall(async () => {
    await matrix.ensureUser(message.sender_matrix_id);
    return matrix.sendEvent(ctx.room, message.sender_matrix_id, "m.room.message", content, Bun.randomUUIDv7());
  });
  const { message: updated, version, events } = await sql.begin(async (tx) => {
    const edited = await recordEdit(tx, message, {
      matrix_event_id: eventId,
      editor_id: cmd.editorId,
      content_preview: indexedPreview(ctx.channel, cmd.text),
      formatted_body: formatted,
      created_at: new Date(),
    });
    const preview = editedPreviewOf(ctx, message, cmd.text, newContent, previewsOff);
    const retargeted = preview ? await retargetPreview(tx, edited.message, preview) : edited.message;
    const mentioned = await replaceEditMentions(ctx, tx, retargeted, mentions.map((m) => m.memberId), edited.version);
    return { ...mentioned, version: edited.version };
  });
  ctx.deps.events.queued(events);
  return announceEdit(ctx, updated, { matrixEventId: eventId, editorId: cmd.editorId, version });
}

async function deleteMessage(ctx: ChannelContext, cmd: { messageId: string; callerId: string }): Promise<MessageRow> {
  const { sql, matrix } = ctx.deps;
  const message = await deliveredMessage(ctx, cmd.messageId);
  const own = message.sender_id === cmd.callerId;
  if (!own) {
    const member = await findMember(sql, ctx.channelId, cmd.callerId);
    const moderator = member && (member.can_kick || member.role === "owner" || member.role === "admin");
    if (!moderator) throw forbidden("only the sender, or a member who may kick, may delete this message");
  }
  // Redacting someone else's event needs power in the room: the creator's account holds 100,
  // as for room state changes.
  const redactor = own ? message.sender_matrix_id : ctx.matrixId(ctx.channel.created_by);
  const { eventId } = await ctx.matrixCall(() => matrix.redact(ctx.room, redactor, message.matrix_event_id, Bun.randomUUIDv7()));
  const deleted = await sql.begin((tx) => markMessageDeleted(tx, message.id, new Date()));
  if (!deleted) throw notFound("message");
  announceDeletion(ctx, deleted, { redactionEventId: eventId, deletedBy: cmd.callerId });
  return deleted;
}

/** Reactions, edits and deletion, run inside the channel's loop. */
export const relationCommands = {
  "relations.react": addReaction,
  "relations.unreact": removeReaction,
  "relations.edit": editMessage,
  "relations.delete": deleteMessage,
};

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends RelationCommands {}
}
type RelationCommands = typeof relationCommands;
