import { ignored, type EventHandler } from "../../channel/handlers.ts";
import { contentTypeOf, mediaFromContent, voiceFromContent } from "../../channel/media.ts";
import { ENCRYPTED_CONTENT_TYPE, ENCRYPTED_EVENT_TYPE } from "../../domain/confidential.ts";
import { fromMatrixUserId, stripReplyFallback } from "../../domain/ids.ts";
import { indexedPreview } from "../../domain/preview.ts";
import { findMessage, findMessageByEvent, insertMessage, rowAsWritten, type NewMessage } from "../../store/messages.ts";
import type { MessageRow } from "../../store/rows.ts";
import { Subjects } from "../../events/model.ts";
import { messageCreatedEvent } from "../../channel/announce.ts";
import { agentMentionedEvents, contentMentions } from "../../channel/mentions.ts";
import type { ChannelContext } from "../../channel/context.ts";
import { linkPreviewOf } from "../../channel/link-previews.ts";

type Relation = { rel_type?: string; event_id?: string; is_falling_back?: boolean; "m.in_reply_to"?: { event_id?: string } };

/**
 * A message from a Matrix client (the channel has already told our own echoes apart), or an
 * encrypted one, indexed without its content. An edit, say, is not a new message: its feature
 * handles `m.room.message|m.replace`.
 */
const messages: EventHandler = {
  kinds: ["m.room.message", ENCRYPTED_EVENT_TYPE],
  async handle(ctx, event) {
    const { sql, matrix } = ctx.deps;
    const relation = event.content["m.relates_to"] as Relation | undefined;
    // An encrypted reaction or other annotation is not a message (and cannot be read), nor is
    // a relation whose feature is absent.
    if (event.type === ENCRYPTED_EVENT_TYPE && relation?.rel_type === "m.annotation") return ignored();
    if (relation?.rel_type === "m.replace") return ignored();
    const rawBody = typeof event.content.body === "string" ? event.content.body : "";
    const msgtype = typeof event.content.msgtype === "string" ? event.content.msgtype : "m.text";
    const inThread = relation?.rel_type === "m.thread" && relation.event_id ? await findMessageByEvent(sql, relation.event_id) : null;
    const threadRoot = inThread ? ((inThread.thread_id ? await findMessage(sql, ctx.channelId, inThread.thread_id) : inThread) ?? null) : null;
    // In a thread, m.in_reply_to is only a fallback for thread-less clients unless is_falling_back is false.
    const fallingBack = relation?.rel_type === "m.thread" && relation.is_falling_back !== false;
    const parentEventId = fallingBack ? undefined : relation?.["m.in_reply_to"]?.event_id;
    const parent = parentEventId ? await findMessageByEvent(sql, parentEventId) : null;
    const sender = fromMatrixUserId(event.sender, matrix.serverName);
    const encrypted = event.type === ENCRYPTED_EVENT_TYPE;
    // An encrypted event's m.mentions is inside its ciphertext: it mentions no one the service can see.
    const mentions = encrypted ? [] : ((await contentMentions(ctx, event.content, sender.id)) ?? []);
    const preview = linkPreviewOf(ctx, encrypted ? null : msgtype, stripReplyFallback(rawBody), event.content);
    return {
      kind: "message",
      eventsQueued: true,
      insert: (seq, consumingInboxEvent) =>
        insertWithEvents(
          ctx,
          {
            id: Bun.randomUUIDv7(),
            channel_id: ctx.channelId,
            seq,
            matrix_event_id: event.event_id,
            matrix_type: event.type,
            sender_id: sender.id,
            sender_type: sender.type,
            sender_matrix_id: event.sender,
            sender_display_name: event.sender_display_name ?? null,
            content_preview: indexedPreview(ctx.channel, stripReplyFallback(rawBody)),
            content_type: encrypted ? ENCRYPTED_CONTENT_TYPE : contentTypeOf(msgtype, event.content),
            msgtype: encrypted ? null : msgtype,
            thread_id: threadRoot?.channel_id === ctx.channelId ? threadRoot.id : null,
            reply_to: parent?.channel_id === ctx.channelId ? parent.id : null,
            delivery_state: "sent",
            outbox_content: null,
            created_at: new Date(event.origin_server_ts),
            media: mediaFromContent(event.content),
            voice: encrypted ? null : voiceFromContent(event.content),
            mentions,
            preview,
          },
          consumingInboxEvent,
        ),
    };
  },
};

/**
 * The message, its mentions, its message.created and one agent.mentioned per mentioned agent,
 * in one statement that also consumes the inbox row: all durable, or none.
 */
async function insertWithEvents(ctx: ChannelContext, message: NewMessage & { created_at: Date }, consumingInboxEvent: string): Promise<MessageRow> {
  const { sql, events } = ctx.deps;
  const row = rowAsWritten(message);
  const published = [{ subject: Subjects.messageCreated, payload: messageCreatedEvent(ctx, row) }, ...agentMentionedEvents(ctx, row)];
  const inserted = await insertMessage(sql, message, { consumingInboxEvent, events: await events.outboxRows(published) });
  events.queued(published);
  return inserted;
}

export const messageHandlers: EventHandler[] = [messages];
