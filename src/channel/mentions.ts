import { Subjects } from "../events/model.ts";
import type { PublishedEvent } from "../events/bus.ts";
import { AppError } from "../errors.ts";
import { MAX_MENTIONS, htmlWithPills, mentionCandidates, mentionedInContent, type Mention } from "../domain/mentions.ts";
import { mentionableMembers } from "../store/members.ts";
import { replaceMentions } from "../store/mentions.ts";
import type { Tx } from "../store/db.ts";
import type { MessageRow } from "../store/rows.ts";
import type { ChannelContext } from "./context.ts";

/**
 * The members a send mentions: those its text names (`@agent:sofia`, `@user:alice`, a Matrix
 * user id) and those it lists, if they are current members who may read the channel. A name in
 * the text that is no such member stays plain text; a listed id that is none is refused (400),
 * since the caller asked for it. The sender never mentions themselves.
 */
export async function sendMentions(ctx: ChannelContext, senderId: string, text: string, listed: string[] | null | undefined): Promise<Mention[]> {
  const inText = text.includes("@") ? mentionCandidates(text, ctx.deps.matrix.serverName) : [];
  const wanted = [...new Set([...inText, ...(listed ?? [])])].filter((id) => id !== senderId);
  if (wanted.length === 0) return [];
  const members = new Map((await mentionableMembers(ctx.deps.sql, ctx.channelId, wanted)).map((m) => [m.member_id, m]));
  const missing = (listed ?? []).filter((id) => id !== senderId && !members.has(id));
  if (missing.length > 0) {
    throw new AppError(400, "INVALID_MENTION", `mentions must name members of the channel who may read it: ${missing.slice(0, 5).join(", ")}`);
  }
  const mentions = wanted.flatMap((id) => {
    const m = members.get(id);
    return m ? [{ memberId: id, matrixId: m.matrix_user_id, display: m.display_name ?? `@${id}` }] : [];
  });
  if (mentions.length > MAX_MENTIONS) throw new AppError(400, "INVALID_MENTION", `a message may mention at most ${MAX_MENTIONS} members`);
  return mentions;
}

/**
 * The Matrix content of a send with mentions: `m.mentions.user_ids` (intentional mentions,
 * Matrix v1.7), and an HTML body where each mention is a pill so Element shows it as one.
 */
export function withMentions(content: Record<string, unknown>, text: string, formattedBody: string | null, mentions: Mention[], serverName: string): void {
  if (mentions.length === 0) return;
  content["m.mentions"] = { user_ids: mentions.map((m) => m.matrixId) };
  content.format = "org.matrix.custom.html";
  content.formatted_body = htmlWithPills(text, formattedBody, mentions, serverName);
}

/**
 * messaging.agent.mentioned for each agent a message in Matrix mentions (or, after an edit,
 * each agent `only` names: the newly mentioned). Its event id is the same however often it is
 * built: `agent.mentioned:{message}:{agent}`, and `…:v{version}` for an edit's.
 */
export function agentMentionedEvents(ctx: ChannelContext, row: MessageRow, edit?: { only: string[]; version: number }): PublishedEvent[] {
  return (edit?.only ?? row.mentions ?? [])
    .filter((id) => id.startsWith("agent:"))
    .map((agentId) => ({
      subject: Subjects.agentMentioned,
      payload: {
        event_id: `agent.mentioned:${row.id}:${agentId}${edit ? `:v${edit.version}` : ""}`,
        agent_id: agentId,
        channel_id: row.channel_id,
        microdao_id: ctx.channel.microdao_id,
        message_id: row.id,
        seq: Number(row.seq),
        matrix_event_id: row.matrix_event_id!,
        sender_id: row.sender_id,
        sender_type: row.sender_type,
        preview: row.content_preview,
        thread_id: row.thread_id,
        mentions: row.mentions,
        created_at: row.created_at.toISOString(),
      },
    }));
}

/**
 * The members a Matrix event's m.mentions names who are current members able to read the
 * channel; never its sender. Null when the content has no m.mentions at all (a client without
 * intentional mentions says nothing about them).
 */
export async function contentMentions(ctx: ChannelContext, content: Record<string, unknown>, senderId: string): Promise<string[] | null> {
  if (!("m.mentions" in content)) return null;
  const named = mentionedInContent(content, ctx.deps.matrix.serverName).filter((id) => id !== senderId);
  if (named.length === 0) return [];
  const members = new Set((await mentionableMembers(ctx.deps.sql, ctx.channelId, named)).map((m) => m.member_id));
  return named.filter((id) => members.has(id)).slice(0, MAX_MENTIONS);
}

/**
 * In an edit's transaction: the new version's mentions replace the message's, and the agents it
 * newly mentions are queued for agent.mentioned. The caller hands `events` to the bus
 * (events.queued) once the transaction committed.
 */
export async function replaceEditMentions(
  ctx: ChannelContext,
  tx: Tx,
  message: MessageRow,
  memberIds: string[],
  version: number,
): Promise<{ message: MessageRow; events: PublishedEvent[] }> {
  const before = new Set(message.mentions ?? []);
  if (memberIds.length === 0 && before.size === 0) return { message, events: [] };
  const added = memberIds.filter((id) => !before.has(id));
  const events = agentMentionedEvents(ctx, { ...message, mentions: memberIds }, { only: added, version });
  const row = await replaceMentions(tx, message, memberIds, events.length > 0 ? await ctx.deps.events.outboxRows(events) : null);
  return { message: row, events };
}
