import type { Sql, Tx } from "../store/db.ts";
import type { MessageRow } from "../store/rows.ts";
import { findMessage } from "../store/messages.ts";
import { AppError } from "../errors.ts";

type Delivered = MessageRow & { matrix_event_id: string };

export interface SendTargets {
  /** The event a reply names (m.in_reply_to), when reply_to is given. */
  replyTo: Delivered | null;
  /** The root of the thread the message goes into, when thread_id is given. */
  threadRoot: Delivered | null;
}

const delivered = (row: MessageRow | null): row is Delivered => Boolean(row?.matrix_event_id && !row.deleted_at);

/**
 * The messages a send replies to and posts into. A name that is not a delivered message of
 * the channel is a 400, found before the send changes anything (a first write's join, an upload).
 */
export async function sendTargets(sql: Sql | Tx, channelId: string, replyTo: string | null, threadId: string | null | undefined): Promise<SendTargets> {
  const [reply, inThread] = await Promise.all([
    replyTo ? findMessage(sql, channelId, replyTo) : null,
    threadId ? findMessage(sql, channelId, threadId) : null,
  ]);
  if (replyTo && !delivered(reply)) throw new AppError(400, "INVALID_REPLY_TO", "reply_to must name a delivered message of this channel");
  if (!threadId) return { replyTo: delivered(reply) ? reply : null, threadRoot: null };
  if (!delivered(inThread)) throw invalidThread();
  // A reply to a reply goes into the same thread: threads are one level deep, as in Matrix.
  // (The root itself may have been deleted since: its thread goes on, as in Matrix.)
  const root = inThread.thread_id ? await findMessage(sql, channelId, inThread.thread_id) : inThread;
  if (!root?.matrix_event_id) throw invalidThread();
  return { replyTo: delivered(reply) ? reply : null, threadRoot: root as Delivered };
}

const invalidThread = () => new AppError(400, "INVALID_THREAD", "thread_id must name a delivered message of this channel");
