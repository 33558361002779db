import { parseMxcUri } from "../matrix/port.ts";
import type { MediaColumns, VoiceColumns } from "../store/rows.ts";
import { FILE_KEY, voiceDetails, VOICE_CONTENT_TYPE } from "../domain/voice.ts";

/** The index's content_type by msgtype; anything else is text. */
export const CONTENT_TYPES: Record<string, string> = {
  "m.image": "image",
  "m.file": "file",
  "m.audio": "audio",
  "m.video": "video",
};

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
  // MSC1767's file block names the file too (Element's voice messages have no `filename`).
  const block = content[FILE_KEY] as { name?: unknown } | undefined;
  const blockName = block && typeof block === "object" && typeof block.name === "string" && block.name ? block.name : null;
  const filename = typeof content.filename === "string" && content.filename ? content.filename : (blockName ?? body);
  return {
    media_url: url,
    media_mimetype: typeof info.mimetype === "string" ? info.mimetype : null,
    media_size: typeof info.size === "number" && Number.isSafeInteger(info.size) && info.size >= 0 ? info.size : null,
    media_filename: filename ? filename.slice(0, 255) : null,
  };
}

/** The voice columns of an m.audio marked as voice (our uploads and Element's), or null. */
export function voiceFromContent(content: Record<string, unknown>): VoiceColumns | null {
  const voice = voiceDetails(content);
  return voice ? { voice_duration_ms: voice.durationMs, voice_waveform: voice.waveform } : null;
}

/** The index's content_type of a message: `voice` for a voice message, else by its msgtype. */
export function contentTypeOf(msgtype: string, content: Record<string, unknown>): string {
  if (voiceDetails(content)) return VOICE_CONTENT_TYPE;
  return CONTENT_TYPES[msgtype] ?? "text";
}
