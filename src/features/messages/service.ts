import type { ServiceDeps } from "../deps.ts";
import type { MessageRow } from "../../store/rows.ts";
import { findMessage, listMessages, listThread, threadStats, type ThreadStats } from "../../store/messages.ts";
import { AppError, notFound } from "../../errors.ts";
import { MatrixError } from "../../matrix/port.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { writeRight } from "../../domain/rights.ts";
import type { SendMessageBody } from "./model.ts";
import type { SendOutcome } from "../../channel/registry.ts";
import { reactionSummaries } from "../../store/reactions.ts";
import { safeFormattedBody } from "../../domain/html.ts";
import type { ReactionSummary } from "../../wire/reaction-summary.ts";

export interface MessagePageResult {
  messages: MessageRow[];
  threads: Map<string, ThreadStats>;
  /** Reaction summaries per message, `me` for the caller. */
  reactions: Map<string, ReactionSummary[]>;
  /** Pass back as ?cursor= for the next (older) page; null on the last page. */
  nextCursor: string | null;
}

export class MessageService {
  constructor(private readonly deps: ServiceDeps) {}

  async list(
    callerId: string,
    channelId: string,
    opts: { limit: number; cursor: string | null; before: Date | null },
  ): Promise<MessagePageResult> {
    // The page is read alongside the access check, a round trip less; a caller who may not
    // read the channel gets the check's 404 and never the page.
    const [, messages] = await Promise.all([
      readableChannel(this.deps.sql, callerId, channelId),
      listMessages(this.deps.sql, channelId, {
        beforeSeq: opts.cursor === null ? null : Number(opts.cursor),
        before: opts.before,
        limit: opts.limit,
      }),
    ]);
    return this.page(messages, opts.limit, callerId);
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
    const messages = await listThread(this.deps.sql, channelId, root.thread_id ?? root.id, {
      beforeSeq: opts.cursor === null ? null : Number(opts.cursor),
      before: opts.before,
      limit: opts.limit,
    });
    return this.page(messages, opts.limit, callerId);
  }

  private async page(messages: MessageRow[], limit: number, callerId: string): Promise<MessagePageResult> {
    const last = messages.at(-1);
    const ids = messages.map((m) => m.id);
    const [threads, reactions] = await Promise.all([threadStats(this.deps.sql, ids), reactionSummaries(this.deps.sql, ids, callerId)]);
    return { messages, threads, reactions, nextCursor: messages.length === limit && last ? String(last.seq) : null };
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
    const [threads, reactions] = await Promise.all([threadStats(this.deps.sql, [row.id]), reactionSummaries(this.deps.sql, [row.id], callerId)]);
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
