import type { ServiceDeps } from "../deps.ts";
import type { MessageRow } from "../../store/rows.ts";
import { channelPage, findMessage, threadPage } from "../../store/messages.ts";
import { extrasOf, pageWithExtras, type MessageExtras, type ThreadStats } from "../../store/message-extras.ts";
import { AppError, notFound } from "../../errors.ts";
import { MatrixError } from "../../matrix/port.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { writeRight } from "../../domain/rights.ts";
import type { SendMessageBody } from "./model.ts";
import type { SendOutcome } from "../../channel/registry.ts";
import { safeFormattedBody } from "../../domain/html.ts";
import type { ReactionSummary } from "../../wire/reaction-summary.ts";

export interface MessagePageResult extends MessageExtras {
  messages: MessageRow[];
  /** Pass back as ?cursor= for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

const pageOf = (opts: { limit: number; cursor: string | null; before: Date | null }) => ({
  beforeSeq: opts.cursor === null ? null : Number(opts.cursor),
  before: opts.before,
  limit: opts.limit,
});

function withCursor(page: { messages: MessageRow[] } & MessageExtras, limit: number): MessagePageResult {
  const last = page.messages.at(-1);
  return { ...page, nextCursor: page.messages.length === limit && last ? String(last.seq) : null };
}

export class MessageService {
  constructor(private readonly deps: ServiceDeps) {}

  async list(
    callerId: string,
    channelId: string,
    opts: { limit: number; cursor: string | null; before: Date | null },
  ): Promise<MessagePageResult> {
    // The page (with its extras) is read alongside the access check, one round trip in all; a
    // caller who may not read the channel gets the check's 404 and never the page.
    const [, page] = await Promise.all([
      readableChannel(this.deps.sql, callerId, channelId),
      pageWithExtras(this.deps.sql, channelPage(this.deps.sql, channelId, pageOf(opts)), callerId),
    ]);
    return withCursor(page, opts.limit);
  }

  /** A thread's replies, newest first, paged like the channel listing. */
  async thread(
    callerId: string,
    channelId: string,
    rootId: string,
    opts: { limit: number; cursor: string | null; before: Date | null },
  ): Promise<MessagePageResult> {
    // As in list: the root is looked up alongside the access check.
    const [, root] = await Promise.all([readableChannel(this.deps.sql, callerId, channelId), findMessage(this.deps.sql, channelId, rootId)]);
    if (!root || root.deleted_at) throw notFound("message");
    const page = await pageWithExtras(this.deps.sql, threadPage(this.deps.sql, channelId, root.thread_id ?? root.id, pageOf(opts)), callerId);
    return withCursor(page, opts.limit);
  }

  /** `id`, when given (derived from an Idempotency-Key), makes a rerun find the same message. */
  async send(callerId: string, channelId: string, body: SendMessageBody, id?: string): Promise<SendOutcome> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    const { joinFirst } = writeRight(access, callerId);
    return this.deps.registry.send(channelId, {
      id,
      senderId: callerId,
      text: body.text,
      msgtype: body.msgtype ?? "m.text",
      formattedBody: safeFormattedBody(body.formatted_body),
      replyTo: body.reply_to ?? null,
      threadId: body.thread_id ?? null,
      mentions: body.mentions ?? null,
      linkPreview: body.link_preview,
      joinFirst,
    }, this.deps.sendConfirmMs);
  }

  /** The index row, with the full content from Matrix (or from the outbox while pending). */
  async get(
    callerId: string,
    channelId: string,
    messageId: string,
  ): Promise<{ row: MessageRow; content: Record<string, unknown>; thread?: ThreadStats; reactions: ReactionSummary[] }> {
    const { channel } = await readableChannel(this.deps.sql, callerId, channelId);
    const row = await findMessage(this.deps.sql, channelId, messageId);
    if (!row || row.deleted_at) throw notFound("message");
    const { threads, reactions } = await extrasOf(this.deps.sql, [row.id], callerId);
    const extras = { thread: threads.get(row.id), reactions: reactions.get(row.id) ?? [] };
    if (!row.matrix_event_id) return { row, content: row.outbox_content ?? {}, ...extras };
    try {
      // Read as the service's sync user, which is in every channel room: not as the sender, who
      // may be a Matrix user outside our namespace, as whom an application service may not act.
      const event = await this.deps.matrix.getEvent(channel.matrix_room_id, row.matrix_event_id);
      return { row, content: event.content, ...extras };
    } catch (err) {
      this.deps.log.warn(
        { channel_id: channelId, message_id: row.id, ...matrixFailure(err) },
        "the homeserver did not return a message's content",
      );
      throw new AppError(502, "MATRIX_UNAVAILABLE", "the Matrix homeserver did not return the message content");
    }
  }
}

/** What a homeserver failure may tell the log: its errcode, status and reason, never the request. */
function matrixFailure(err: unknown): Record<string, unknown> {
  if (err instanceof MatrixError) return { errcode: err.errcode, status: err.httpStatus, reason: err.message };
  return { err: err instanceof Error ? err.name : String(err) };
}
