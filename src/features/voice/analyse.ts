import { parseBuffer } from "music-metadata";
import { OggOpusDecoder } from "ogg-opus-decoder";
import { AppError } from "../../errors.ts";
import { WAVEFORM_MAX, WAVEFORM_POINTS } from "../../domain/voice.ts";

/**
 * A voice recording's duration and waveform, read from the file itself. Only Ogg/Opus (what
 * Element records) is read: music-metadata probes the container, codec and declared length from
 * the headers and the last page (cheap, before any decoding), then ogg-opus-decoder (libopus in
 * WebAssembly, from the wasm-audio-decoders project) decodes it to PCM for the exact length and
 * the waveform. The work is bounded: the upload's size limit, a duration limit checked on the
 * declared length and again while decoding, and a wall-clock budget checked between chunks, with
 * the event loop given back after each chunk.
 */
export interface VoiceLimits {
  /** Longer recordings are refused (422 VOICE_TOO_LONG); default 15 minutes. */
  maxDurationMs: number;
  /** Decoding that takes longer is abandoned (422 VOICE_DECODE_TIMEOUT); default 10 s. */
  decodeTimeoutMs: number;
}

export const DEFAULT_VOICE_LIMITS: VoiceLimits = { maxDurationMs: 15 * 60_000, decodeTimeoutMs: 10_000 };

export interface VoiceAnalysis {
  durationMs: number;
  /** WAVEFORM_POINTS integers 0..1024: RMS per slice of the recording, the loudest slice at 1024. */
  waveform: number[];
}

/** The part types a voice upload may have (Element sends audio/ogg). */
export const VOICE_MIME_TYPES = new Set(["audio/ogg", "audio/opus"]);

const OPUS_RATE = 48_000;
/** Bytes handed to the decoder at a time: a few seconds of speech, between deadline checks. */
const CHUNK_BYTES = 16 * 1024;
/** Slices per waveform point, so short and long recordings get the same resolution. */
const SLICES_PER_POINT = 8;
/** Quieter than this (about -80 dBFS) is silence: an all-zero waveform, not amplified noise. */
const SILENCE_RMS = 1e-4;

export const unsupportedVoiceFormat = (what: string) =>
  new AppError(415, "UNSUPPORTED_VOICE_FORMAT", `voice messages are read as Ogg/Opus only (audio/ogg); ${what}`);
const invalid = (why: string) => new AppError(422, "INVALID_VOICE_FILE", `the voice recording could not be read: ${why}`);
const tooLong = (limits: VoiceLimits) =>
  new AppError(422, "VOICE_TOO_LONG", `voice messages may last at most ${Math.floor(limits.maxDurationMs / 1000)} s (VOICE_MAX_DURATION_MS)`);

export async function analyseVoice(bytes: Uint8Array, mimetype: string, limits: VoiceLimits = DEFAULT_VOICE_LIMITS): Promise<VoiceAnalysis> {
  if (!VOICE_MIME_TYPES.has(mimetype)) throw unsupportedVoiceFormat(`'${mimetype || "unknown"}' is not`);
  if (!startsWith(bytes, "OggS")) throw unsupportedVoiceFormat("this file is not an Ogg file");
  const expectedSamples = await probe(bytes, mimetype, limits);
  const started = performance.now();
  const maxSamples = Math.ceil((limits.maxDurationMs * OPUS_RATE) / 1000);
  const sliceSamples = Math.max(1, Math.floor(expectedSamples / (WAVEFORM_POINTS * SLICES_PER_POINT)));
  const slices = new SliceEnergy(sliceSamples);
  const decoder = new OggOpusDecoder();
  try {
    await decoder.ready;
    for (let offset = 0; offset < bytes.byteLength; offset += CHUNK_BYTES) {
      slices.add(await decoder.decode(bytes.subarray(offset, offset + CHUNK_BYTES)));
      if (slices.samples > maxSamples) throw tooLong(limits);
      if (performance.now() - started > limits.decodeTimeoutMs) {
        throw new AppError(422, "VOICE_DECODE_TIMEOUT", `the voice recording took longer than ${limits.decodeTimeoutMs} ms to read`);
      }
      // Other requests go on between chunks.
      await new Promise((resolve) => setImmediate(resolve));
    }
    slices.add(await decoder.flush());
  } catch (err) {
    if (err instanceof AppError) throw err;
    throw invalid("the Opus stream does not decode");
  } finally {
    decoder.free();
  }
  if (slices.errors > 0 || slices.samples === 0) throw invalid("the Opus stream does not decode");
  if (slices.samples > maxSamples) throw tooLong(limits);
  // Pages that fail their checksum are skipped by the decoder: a recording shorter than its
  // headers say has lost some of itself.
  const tolerance = Math.max(OPUS_RATE * 0.12, expectedSamples * 0.01);
  if (Math.abs(slices.samples - expectedSamples) > tolerance) throw invalid("parts of the Opus stream are damaged");
  return { durationMs: Math.round((slices.samples * 1000) / OPUS_RATE), waveform: slices.waveform(WAVEFORM_POINTS) };
}

/** Container, codec and declared length, from the headers and the last page; the declared sample count. */
async function probe(bytes: Uint8Array, mimetype: string, limits: VoiceLimits): Promise<number> {
  let format;
  try {
    ({ format } = await parseBuffer(bytes, { mimeType: mimetype, size: bytes.byteLength }, { duration: true, skipCovers: true }));
  } catch {
    throw invalid("its Ogg headers are damaged");
  }
  if (format.container !== "Ogg") throw unsupportedVoiceFormat("this file is not an Ogg file");
  if (format.codec !== "Opus") throw unsupportedVoiceFormat(`Ogg ${format.codec ?? "with an unknown codec"} is not read`);
  const seconds = format.duration;
  if (typeof seconds !== "number" || !Number.isFinite(seconds) || seconds <= 0) throw invalid("it declares no length");
  if (seconds * 1000 > limits.maxDurationMs) throw tooLong(limits);
  return Math.round(seconds * OPUS_RATE);
}

interface Decoded {
  channelData: Float32Array[];
  samplesDecoded: number;
  errors: unknown[];
}

/** Mean square energy per fixed slice of samples (all channels averaged), accumulated chunk by chunk. */
class SliceEnergy {
  samples = 0;
  errors = 0;
  private readonly sums: number[] = [];
  private current = 0;
  private inSlice = 0;

  constructor(private readonly sliceSamples: number) {}

  add(decoded: Decoded) {
    this.errors += decoded.errors?.length ?? 0;
    const channels = decoded.channelData ?? [];
    const n = decoded.samplesDecoded ?? 0;
    if (channels.length === 0 || n === 0) return;
    for (let i = 0; i < n; i++) {
      let square = 0;
      for (const channel of channels) square += channel[i]! * channel[i]!;
      this.current += square / channels.length;
      if (++this.inSlice === this.sliceSamples) this.closeSlice();
    }
    this.samples += n;
  }

  private closeSlice() {
    this.sums.push(this.current / this.inSlice);
    this.current = 0;
    this.inSlice = 0;
  }

  /** `points` RMS values over the whole recording, scaled so the loudest is WAVEFORM_MAX. */
  waveform(points: number): number[] {
    if (this.inSlice > 0) this.closeSlice();
    const slices = this.sums;
    const rms: number[] = [];
    for (let p = 0; p < points; p++) {
      const from = Math.floor((p * slices.length) / points);
      const to = Math.max(from + 1, Math.floor(((p + 1) * slices.length) / points));
      let sum = 0;
      for (let s = from; s < to && s < slices.length; s++) sum += slices[s]!;
      rms.push(Math.sqrt(sum / (to - from)));
    }
    const loudest = Math.max(...rms);
    if (!(loudest > SILENCE_RMS)) return rms.map(() => 0);
    return rms.map((v) => Math.round((v / loudest) * WAVEFORM_MAX));
  }
}

function startsWith(bytes: Uint8Array, magic: string): boolean {
  if (bytes.byteLength < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (bytes[i] !== magic.charCodeAt(i)) return false;
  return true;
}
