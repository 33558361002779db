import { AUDIO_KEY, FILE_KEY, TEXT_KEY, VOICE_KEY } from "../../domain/voice.ts";
import type { VoiceAnalysis } from "./analyse.ts";

/** What a voice message says when it has no caption: Element's body for its own. */
export const VOICE_BODY = "Voice message";
/** The name of a voice recording uploaded without one. */
export const VOICE_FILENAME = "Voice message.ogg";

/**
 * The Matrix content of a voice message besides msgtype (m.audio) and body, as Element's
 * createVoiceMessageContent makes it: `info.duration` in ms, MSC1767's text, file and audio
 * blocks (duration, waveform) and MSC3245's voice marker, so Element shows its voice player.
 */
export function voiceContent(
  file: { url: string; mimetype: string; size: number; filename: string; body: string; caption: boolean },
  voice: VoiceAnalysis,
): Record<string, unknown> {
  return {
    url: file.url,
    // Matrix v1.10 captions: with `filename`, `body` is a caption. Element's own voice messages
    // have none (the name is in the MSC1767 file block), so neither has an uncaptioned one here.
    ...(file.caption ? { filename: file.filename } : {}),
    info: { mimetype: file.mimetype, size: file.size, duration: voice.durationMs },
    [TEXT_KEY]: file.body,
    [FILE_KEY]: { url: file.url, name: file.filename, mimetype: file.mimetype, size: file.size },
    [AUDIO_KEY]: { duration: voice.durationMs, waveform: voice.waveform },
    [VOICE_KEY]: {},
  };
}
