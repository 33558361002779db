import { join } from "node:path";

/**
 * The voice fixture: 1 s of silence then 1 s of a 440 Hz sine at -2 dBFS, 48 kHz mono, encoded
 * as Ogg/Opus at 24 kbit/s (6887 bytes), made with
 *   sox -n -r 48000 -c 1 -b 16 src.wav synth 1 sine 440 vol 0 : synth 1 sine 440 vol 0.8
 *   opusenc --bitrate 24 --comp 10 src.wav voice-silence-then-tone.ogg
 */
export const VOICE_FIXTURE = join(import.meta.dir, "..", "fixtures", "voice-silence-then-tone.ogg");

export async function voiceFixture(): Promise<Uint8Array<ArrayBuffer>> {
  return new Uint8Array(await Bun.file(VOICE_FIXTURE).arrayBuffer());
}

/** A 16-bit mono PCM WAV of a 440 Hz tone: a readable audio file that is not Ogg/Opus. */
export function wavBytes(seconds: number, rate = 8000): Uint8Array<ArrayBuffer> {
  const samples = Math.round(seconds * rate);
  const buffer = new ArrayBuffer(44 + samples * 2);
  const view = new DataView(buffer);
  const ascii = (at: number, s: string) => [...s].forEach((c, i) => view.setUint8(at + i, c.charCodeAt(0)));
  ascii(0, "RIFF");
  view.setUint32(4, 36 + samples * 2, true);
  ascii(8, "WAVE");
  ascii(12, "fmt ");
  view.setUint32(16, 16, true);
  view.setUint16(20, 1, true);
  view.setUint16(22, 1, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * 2, true);
  view.setUint16(32, 2, true);
  view.setUint16(34, 16, true);
  ascii(36, "data");
  view.setUint32(40, samples * 2, true);
  for (let i = 0; i < samples; i++) view.setInt16(44 + i * 2, Math.round(Math.sin((2 * Math.PI * 440 * i) / rate) * 20000), true);
  return new Uint8Array(buffer);
}
