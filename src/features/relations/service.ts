import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { requireMemberWriteRight, writeRight } from "../../domain/rights.ts";
import { findMessage } from "../../store/messages.ts";
import { notFound } from "../../errors.ts";
import { listEdits } from "../../store/edits.ts";
import { safeFormattedBody, sanitizeMatrixHtml } from "../../domain/html.ts";
import type { EditBody, EditVersion, ReactionResult } from "./model.ts";
import type { MessageView } from "../messages/model.ts";

/** Reactions, edits and deletion: access is checked here, the change runs in the channel's actor. */
export class RelationsService {
  constructor(private readonly deps: ServiceDeps) {}

  async react(callerId: string, channelId: string, messageId: string, emoji: string): Promise<ReactionResult> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    const { joinFirst } = writeRight(access, callerId);
    return this.deps.registry.run(channelId, "relations.react", { messageId, reactorId: callerId, emoji, joinFirst });
  }

  async unreact(callerId: string, channelId: string, messageId: string, emoji: string): Promise<ReactionResult> {
    // Taking a reaction back is a write like adding one: it needs can_write now.
    requireMemberWriteRight(await readableChannel(this.deps.sql, callerId, channelId), callerId, "remove reactions");
    return this.deps.registry.run(channelId, "relations.unreact", { messageId, reactorId: callerId, emoji });
  }

  async edit(callerId: string, channelId: string, messageId: string, body: EditBody): Promise<MessageView> {
    await readableChannel(this.deps.sql, callerId, channelId);
    return this.deps.registry.run(channelId, "relations.edit", {
      messageId,
      editorId: callerId,
      text: body.text,
      formattedBody: safeFormattedBody(body.formatted_body),
      mentions: body.mentions ?? null,
      linkPreview: body.link_preview,
    });
  }

  async remove(callerId: string, channelId: string, messageId: string): Promise<{ message_id: string; deleted_at: string }> {
    await readableChannel(this.deps.sql, callerId, channelId);
    const row = await this.deps.registry.run(channelId, "relations.delete", { messageId, callerId });
    return { message_id: row.id, deleted_at: row.deleted_at!.toISOString() };
  }

  /** Oldest first; a message never edited has one version, the original. */
  async edits(callerId: string, channelId: string, messageId: string): Promise<EditVersion[]> {
    await readableChannel(this.deps.sql, callerId, channelId);
    const message = await findMessage(this.deps.sql, channelId, messageId);
    if (!message || message.deleted_at || message.delivery_state === "failed") throw notFound("message");
    const rows = await listEdits(this.deps.sql, message.id);
    if (rows.length === 0) {
      return [
        {
          version: 1,
          editor_id: message.sender_id,
          content_preview: message.content_preview,
          formatted_body: null,
          matrix_event_id: message.matrix_event_id,
          created_at: message.created_at.toISOString(),
        },
      ];
    }
    return rows.map((r) => ({
      version: r.version,
      editor_id: r.editor_id,
      content_preview: r.content_preview,
      // Versions indexed before HTML was sanitised on the way in are made safe here.
      formatted_body: r.formatted_body === null ? null : sanitizeMatrixHtml(r.formatted_body),
      matrix_event_id: r.matrix_event_id,
      created_at: r.created_at.toISOString(),
    }));
  }
}
