import { indexedPreview } from "../../domain/preview.ts";
import { safeFormattedBody } from "../../domain/html.ts";
import type { Ingester } from "../../actors/ingest-routes.ts";
import { consumeInboxEvent } from "../../store/inbox.ts";
import { fromMatrixUserId } from "../../domain/ids.ts";
import { findMessageByEvent } from "../../store/messages.ts";
import { announceDeletion, announceEdit, announceReaction } from "./announce.ts";
import { findReactionByEvent, markReactionRemoved, upsertReaction } from "../../store/reactions.ts";
import { findEditByEvent, markMessageDeleted, recordEdit } from "../../store/edits.ts";

type Relation = { rel_type?: unknown; event_id?: unknown; key?: unknown };

/** m.reaction from a Matrix client: one reaction per member per emoji, as the homeserver enforces. */
export const ingestReaction: Ingester = async (ctx, event) => {
  const { sql, matrix } = ctx.deps;
  const rel = event.content["m.relates_to"] as Relation | undefined;
  const skip = () => consumeInboxEvent(sql, event.event_id);
  if (rel?.rel_type !== "m.annotation" || typeof rel.event_id !== "string" || typeof rel.key !== "string" || !rel.key) return skip();
  // Our own reactions echo back: known by event id (even once removed again).
  if (await findReactionByEvent(sql, event.event_id)) return skip();
  const target = await findMessageByEvent(sql, rel.event_id);
  if (!target || target.channel_id !== ctx.channelId || target.deleted_at) return skip();
  const reactor = fromMatrixUserId(event.sender, matrix.serverName);
  const key = rel.key;
  const row = await sql.begin(async (tx) => {
    const added = await upsertReaction(tx, {
      message_id: target.id,
      reactor_id: reactor.id,
      reactor_type: reactor.type,
      emoji: key,
      matrix_event_id: event.event_id,
      created_at: new Date(event.origin_server_ts),
    });
    await consumeInboxEvent(tx, event.event_id);
    return added;
  });
  if (row) await announceReaction(ctx, "added", row);
};

/**
 * An edit (m.replace) from a Matrix client. As the spec says, only the original sender's edits
 * count; an edit of an edit, or of something we do not index, is skipped.
 */
export const ingestEdit: Ingester = async (ctx, event) => {
  const { sql, matrix } = ctx.deps;
  const rel = event.content["m.relates_to"] as Relation | undefined;
  const newContent = event.content["m.new_content"] as Record<string, unknown> | undefined;
  const skip = () => consumeInboxEvent(sql, event.event_id);
  if (typeof rel?.event_id !== "string" || typeof newContent?.body !== "string") return skip();
  if (await findEditByEvent(sql, event.event_id)) return skip();
  const target = await findMessageByEvent(sql, rel.event_id);
  if (!target || target.channel_id !== ctx.channelId || target.deleted_at || target.sender_matrix_id !== event.sender) return skip();
  const editor = fromMatrixUserId(event.sender, matrix.serverName);
  const body = newContent.body;
  const formatted = typeof newContent.formatted_body === "string" ? safeFormattedBody(newContent.formatted_body) : null;
  const { message, version } = await sql.begin(async (tx) => {
    const recorded = await recordEdit(tx, target, {
      matrix_event_id: event.event_id,
      editor_id: editor.id,
      content_preview: indexedPreview(ctx.channel, body),
      formatted_body: formatted,
      created_at: new Date(event.origin_server_ts),
    });
    await consumeInboxEvent(tx, event.event_id);
    return recorded;
  });
  await announceEdit(ctx, message, { matrixEventId: event.event_id, editorId: editor.id, version });
};

/** A redaction from a Matrix client deletes a message or removes a reaction; our own echo is a no-op. */
export const ingestRedaction: Ingester = async (ctx, event) => {
  const { sql, matrix } = ctx.deps;
  const redacts = event.redacts ?? (typeof event.content.redacts === "string" ? event.content.redacts : undefined);
  const skip = () => consumeInboxEvent(sql, event.event_id);
  if (!redacts) return skip();
  const by = fromMatrixUserId(event.sender, matrix.serverName).id;
  const message = await findMessageByEvent(sql, redacts);
  if (message) {
    if (message.channel_id !== ctx.channelId || message.deleted_at) return skip();
    const deleted = await sql.begin(async (tx) => {
      const row = await markMessageDeleted(tx, message.id, new Date(event.origin_server_ts));
      await consumeInboxEvent(tx, event.event_id);
      return row;
    });
    if (deleted) announceDeletion(ctx, deleted, { redactionEventId: event.event_id, deletedBy: by });
    return;
  }
  const reaction = await findReactionByEvent(sql, redacts);
  if (!reaction || reaction.removed_at) return skip();
  const removed = await sql.begin(async (tx) => {
    const row = await markReactionRemoved(tx, reaction.id);
    await consumeInboxEvent(tx, event.event_id);
    return row;
  });
  if (removed) await announceReaction(ctx, "removed", removed);
};
