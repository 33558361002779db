import { parseMxcUri } from "../matrix/port.ts";
import type { MediaColumns } from "../store/rows.ts";

const MEDIA_MSGTYPES = new Set(["m.image", "m.file", "m.audio", "m.video"]);

/**
 * The media columns of an m.room.message content, from our own sends and from Element alike.
 * Encrypted attachments (`file` instead of `url`) are not downloadable through the service.
 */
export function mediaFromContent(content: Record<string, unknown>): MediaColumns | null {
  if (!MEDIA_MSGTYPES.has(content.msgtype as string)) return null;
  const url = content.url;
  if (typeof url !== "string" || !parseMxcUri(url)) return null;
  const info = (content.info && typeof content.info === "object" ? content.info : {}) as Record<string, unknown>;
  const body = typeof content.body === "string" ? content.body : null;
  // Since Matrix v1.10 `filename` is the file's name and `body` may be a caption; before, body was the name.
  const filename = typeof content.filename === "string" && content.filename ? content.filename : body;
  return {
    media_url: url,
    media_mimetype: typeof info.mimetype === "string" ? info.mimetype : null,
    media_size: typeof info.size === "number" && Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : null,
    media_filename: filename ? filename.slice(0, 255) : null,
  };
}
