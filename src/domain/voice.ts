/**
 * Voice messages as Element sends them (MSC3245 on top of MSC1767 extensible events): an
 * m.audio whose content carries `org.matrix.msc3245.voice: {}` and, in
 * `org.matrix.msc1767.audio`, the duration in ms and an MSC3246 waveform (integers 0..1024).
 */
export const VOICE_KEY = "org.matrix.msc3245.voice";
/** The older msgtype-less marker of MSC2516, still read from early clients. */
export const LEGACY_VOICE_KEY = "org.matrix.msc2516.voice";
export const AUDIO_KEY = "org.matrix.msc1767.audio";
export const FILE_KEY = "org.matrix.msc1767.file";
export const TEXT_KEY = "org.matrix.msc1767.text";

/** The content_type of a voice message in the index and in views. */
export const VOICE_CONTENT_TYPE = "voice";
/** MSC3246: the waveform's values are integers from 0 to 1024. */
export const WAVEFORM_MAX = 1024;
/** MSC3246 asks for 30 to 120 points; the service sends 100. */
export const WAVEFORM_POINTS = 100;
/** The most points kept from a client's waveform: more is not a waveform anyone draws. */
export const WAVEFORM_POINTS_KEPT = 1024;

export interface VoiceDetails {
  durationMs: number | null;
  waveform: number[] | null;
}

/** An m.audio's voice details, or null when it is not marked as voice. Bad values become null, never an error. */
export function voiceDetails(content: Record<string, unknown>): VoiceDetails | null {
  if (content.msgtype !== "m.audio") return null;
  if (!isObject(content[VOICE_KEY]) && !isObject(content[LEGACY_VOICE_KEY])) return null;
  const audio = isObject(content[AUDIO_KEY]) ? content[AUDIO_KEY] : {};
  const info = isObject(content.info) ? content.info : {};
  return {
    durationMs: milliseconds(audio.duration) ?? milliseconds(info.duration),
    waveform: waveformOf(audio.waveform),
  };
}

function milliseconds(value: unknown): number | null {
  return typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= 2_147_483_647 ? Math.round(value) : null;
}

function waveformOf(value: unknown): number[] | null {
  if (!Array.isArray(value) || value.length === 0) return null;
  if (!value.every((v) => typeof v === "number" && Number.isFinite(v))) return null;
  return (value as number[]).slice(0, WAVEFORM_POINTS_KEPT).map((v) => Math.min(WAVEFORM_MAX, Math.max(0, Math.round(v))));
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
