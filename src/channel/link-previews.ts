import type { ChannelContext } from "./context.ts";
import type { MessageRow } from "../store/rows.ts";
import { bundledList, previewColumns, saysNoPreviews, wantedPreview, type PreviewColumns } from "../domain/link-previews.ts";

/**
 * What a message wants previewed (README "Link previews"): the previews its content bundles
 * (MSC4095, as a Matrix client may send them), used as they are with no fetch; else its first
 * link, fetched once it is sent. None for an empty MSC4095 list (an API send with
 * `link_preview: false` carries one), an encrypted event, a confidential channel, or with
 * LINK_PREVIEWS=off.
 */
export function linkPreviewOf(ctx: ChannelContext, msgtype: string | null, body: string, content: Record<string, unknown>): PreviewColumns | null {
  if (!ctx.deps.linkPreviews) return null;
  const wanted = wantedPreview({ body, msgtype, encrypted: ctx.channel.is_encrypted, content });
  return previewColumns(wanted, saysNoPreviews(content));
}

/**
 * What an edit's new content wants previewed. Previews stay off when its sender turned them off,
 * unless the edit says otherwise: `off` from an API edit's `link_preview`, an MSC4095 list in
 * a Matrix client's m.new_content (empty: off; with entries: on).
 */
export function editedPreviewOf(ctx: ChannelContext, message: MessageRow, body: string, newContent: Record<string, unknown>, off?: boolean): PreviewColumns | null {
  if (!ctx.deps.linkPreviews) return null;
  const stillOff = off ?? (bundledList(newContent) ? saysNoPreviews(newContent) : message.link_previews_off);
  if (stillOff) return previewColumns({ kind: "none" }, true);
  return previewColumns(wantedPreview({ body, msgtype: message.msgtype ?? "m.text", encrypted: ctx.channel.is_encrypted, content: newContent }), false);
}
