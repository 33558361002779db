import { indexedPreview } from "../../domain/preview.ts";
import { safeFormattedBody } from "../../domain/html.ts";
import { ignored, indexed, type EventHandler } from "../../channel/handlers.ts";
import { fromMatrixUserId } from "../../domain/ids.ts";
import { findMessageByEvent } from "../../store/messages.ts";
import { announceDeletion, announceEdit, announceReaction } from "./announce.ts";
import { findReactionByEvent, markReactionRemoved, upsertReaction } from "../../store/reactions.ts";
import { findEditByEvent, markMessageDeleted, recordEdit } from "../../store/edits.ts";
import { contentMentions, replaceEditMentions } from "../../channel/mentions.ts";
import { editedPreviewOf } from "../../channel/link-previews.ts";
import { retargetPreview } from "../../store/link-previews.ts";

type Relation = { rel_type?: unknown; event_id?: unknown; key?: unknown };

/** m.reaction from a Matrix client: one reaction per member per emoji, as the homeserver enforces. */
const reactions: EventHandler = {
  kinds: ["m.reaction"],
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const rel = event.content["m.relates_to"] as Relation | undefined;
    if (rel?.rel_type !== "m.annotation" || typeof rel.event_id !== "string" || typeof rel.key !== "string" || !rel.key) return ignored();
    // Our own reactions echo back: known by event id (even once removed again).
    if (await findReactionByEvent(sql, event.event_id)) return ignored();
    const target = await findMessageByEvent(sql, rel.event_id);
    if (!target || target.channel_id !== ctx.channelId || target.deleted_at) return ignored();
    const reactor = fromMatrixUserId(event.sender, matrix.serverName);
    const key = rel.key;
    return indexed(
      (tx) =>
        upsertReaction(tx, {
          message_id: target.id,
          reactor_id: reactor.id,
          reactor_type: reactor.type,
          emoji: key,
          matrix_event_id: event.event_id,
          created_at: new Date(event.origin_server_ts),
        }),
      async (row) => {
        if (row) await announceReaction(ctx, "added", row);
      },
    );
  },
};

/**
 * An edit (m.replace) from a Matrix client. As the spec says, only the original sender's edits
 * count; an edit of an edit, or of something we do not index, is skipped.
 */
const edits: EventHandler = {
  kinds: ["m.room.message|m.replace", "m.room.encrypted|m.replace"],
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const rel = event.content["m.relates_to"] as Relation | undefined;
    const newContent = event.content["m.new_content"] as Record<string, unknown> | undefined;
    if (typeof rel?.event_id !== "string" || typeof newContent?.body !== "string") return ignored();
    if (await findEditByEvent(sql, event.event_id)) return ignored();
    const target = await findMessageByEvent(sql, rel.event_id);
    if (!target || target.channel_id !== ctx.channelId || target.deleted_at || target.sender_matrix_id !== event.sender) return ignored();
    const editor = fromMatrixUserId(event.sender, matrix.serverName);
    const body = newContent.body;
    const formatted = typeof newContent.formatted_body === "string" ? safeFormattedBody(newContent.formatted_body) : null;
    // The new version's m.mentions replaces the message's; without any, the mentions stay as they were.
    const mentions = await contentMentions(ctx, newContent, editor.id);
    return indexed(
      async (tx) => {
        const edited = await recordEdit(tx, target, {
          matrix_event_id: event.event_id,
          editor_id: editor.id,
          content_preview: indexedPreview(ctx.channel, body),
          formatted_body: formatted,
          created_at: new Date(event.origin_server_ts),
        });
        const preview = editedPreviewOf(ctx, target, body, newContent);
        const message = preview ? await retargetPreview(tx, edited.message, preview) : edited.message;
        if (mentions === null) return { message, version: edited.version, events: [] };
        const mentioned = await replaceEditMentions(ctx, tx, message, mentions, edited.version);
        return { ...mentioned, version: edited.version };
      },
      ({ message, version, events }) => {
        ctx.deps.events.queued(events);
        return announceEdit(ctx, message, { matrixEventId: event.event_id, editorId: editor.id, version });
      },
    );
  },
};

/** A redaction from a Matrix client deletes a message or removes a reaction; our own echo is a no-op. */
const redactions: EventHandler = {
  kinds: ["m.room.redaction"],
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const redacts = event.redacts ?? (typeof event.content.redacts === "string" ? event.content.redacts : undefined);
    if (!redacts) return ignored();
    const by = fromMatrixUserId(event.sender, matrix.serverName).id;
    const message = await findMessageByEvent(sql, redacts);
    if (message) {
      if (message.channel_id !== ctx.channelId || message.deleted_at) return ignored();
      return indexed(
        (tx) => markMessageDeleted(tx, message.id, new Date(event.origin_server_ts)),
        (deleted) => {
          if (deleted) announceDeletion(ctx, deleted, { redactionEventId: event.event_id, deletedBy: by });
        },
      );
    }
    const reaction = await findReactionByEvent(sql, redacts);
    if (!reaction || reaction.removed_at) return ignored();
    return indexed(
      (tx) => markReactionRemoved(tx, reaction.id),
      async (removed) => {
        if (removed) await announceReaction(ctx, "removed", removed);
      },
    );
  },
};

export const relationHandlers: EventHandler[] = [reactions, edits, redactions];
