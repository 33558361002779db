import type { ChannelContext } from "../../channel/context.ts";
import type { PublishedEvent } from "../../events/bus.ts";
import { Subjects } from "../../events/model.ts";
import { attachPreview, dropPreviewJob } from "../../store/link-previews.ts";
import type { MessageRow } from "../../store/rows.ts";
import { toLinkPreviewView } from "../../store/views.ts";
import type { LinkPreview } from "../../wire/link-preview.ts";
import { messageViewOf } from "../relations/announce.ts";

/** Who "edits" a message when its link preview arrives, in messaging.message.updated. */
export const PREVIEW_EDITOR = "system:link-preview";

/**
 * The worker's fetched preview, written inside the channel's loop (on its owner, in a cluster),
 * so it is ordered with the message's sends, edits and deletion: written only while the message
 * still wants that link, then announced as message.updated (frame and NATS). Idempotent: the
 * same preview again changes nothing anyone sees but its repeat frame, and its event id is the
 * same (deduplicated by the outbox and JetStream).
 */
async function attach(ctx: ChannelContext, args: { messageId: string; url: string; preview: LinkPreview }): Promise<boolean> {
  const { sql, events } = ctx.deps;
  // A confidential channel never has a preview (none is ever wanted there; this is the last guard).
  if (ctx.channel.is_encrypted) {
    await dropPreviewJob(sql, args.messageId, args.url);
    return false;
  }
  let published: PublishedEvent[] = [];
  const done = await attachPreview(sql, args.messageId, args.url, args.preview, (row, version) => {
    published = [{ subject: Subjects.messageUpdated, payload: previewArrived(row, version) }];
    return events.outboxRows(published);
  });
  if (!done) return false;
  events.queued(published);
  const view = await messageViewOf(ctx, done.row);
  void ctx.announce({ type: "message.updated", seq: view.seq, message: view });
  return true;
}

function previewArrived(row: MessageRow, version: number) {
  return {
    event_id: `message.updated:link_preview:${row.id}:v${version}`,
    channel_id: row.channel_id,
    message_id: row.id,
    seq: Number(row.seq),
    matrix_event_id: row.matrix_event_id!,
    editor_id: PREVIEW_EDITOR,
    version,
    preview: row.content_preview,
    edited_at: (row.edited_at ?? row.created_at).toISOString(),
    change: "link_preview" as const,
    link_preview: toLinkPreviewView(row),
  };
}

export const previewCommands = {
  "previews.attach": attach,
};

declare module "../../channel/commands.ts" {
  interface ChannelCommands extends PreviewCommands {}
}
type PreviewCommands = typeof previewCommands;
