import { describe, expect, test } from "bun:test";
import { analyseVoice } from "../../src/features/voice/analyse.ts";
import { voiceDetails } from "../../src/domain/voice.ts";
import { contentTypeOf, voiceFromContent } from "../../src/channel/media.ts";
import { voiceFixture, wavBytes } from "../helpers/voice.ts";

const refusal = (p: Promise<unknown>) =>
  p.then(
    () => ({ status: 0, code: "accepted" }),
    (err: { status: number; code: string }) => ({ status: err.status, code: err.code }),
  );

describe("reading a voice recording", () => {
  test("the fixture (1 s of silence, then 1 s of a 440 Hz tone) lasts 2000 ms and its waveform is flat, then full", async () => {
    const { durationMs, waveform } = await analyseVoice(await voiceFixture(), "audio/ogg");
    expect(Math.abs(durationMs - 2000)).toBeLessThanOrEqual(5);
    expect(waveform).toHaveLength(100);
    expect(waveform.every((v) => Number.isInteger(v) && v >= 0 && v <= 1024)).toBe(true);
    // The first second (points 0..47) is silent; the second (52..99) is the tone, near the loudest.
    expect(Math.max(...waveform.slice(0, 48))).toBeLessThanOrEqual(16);
    expect(Math.min(...waveform.slice(52))).toBeGreaterThan(900);
    expect(Math.max(...waveform)).toBe(1024);
  });

  test("audio/opus is read too; other types, other codecs and non-Ogg bytes are 415 UNSUPPORTED_VOICE_FORMAT", async () => {
    expect((await analyseVoice(await voiceFixture(), "audio/opus")).durationMs).toBeGreaterThan(1990);
    expect(await refusal(analyseVoice(wavBytes(0.5), "audio/wav"))).toEqual({ status: 415, code: "UNSUPPORTED_VOICE_FORMAT" });
    expect(await refusal(analyseVoice(wavBytes(0.5), "audio/ogg"))).toEqual({ status: 415, code: "UNSUPPORTED_VOICE_FORMAT" });
    expect(await refusal(analyseVoice(await voiceFixture(), "audio/mpeg"))).toEqual({ status: 415, code: "UNSUPPORTED_VOICE_FORMAT" });
  });

  test("a truncated or damaged recording is 422 INVALID_VOICE_FILE", async () => {
    const bytes = await voiceFixture();
    expect(await refusal(analyseVoice(bytes.slice(0, Math.floor(bytes.byteLength / 2)), "audio/ogg"))).toEqual({ status: 422, code: "INVALID_VOICE_FILE" });
    const damaged = bytes.slice();
    for (let i = 200; i < damaged.byteLength - 200; i += 7) damaged[i]! ^= 0x5a;
    expect(await refusal(analyseVoice(damaged, "audio/ogg"))).toEqual({ status: 422, code: "INVALID_VOICE_FILE" });
    // Its headers alone: an Ogg/Opus stream with no audio.
    expect(await refusal(analyseVoice(bytes.slice(0, 120), "audio/ogg"))).toEqual({ status: 422, code: "INVALID_VOICE_FILE" });
  });

  test("the work is bounded: a longer recording than the limit is 422 VOICE_TOO_LONG, a slow read 422 VOICE_DECODE_TIMEOUT", async () => {
    const bytes = await voiceFixture();
    expect(await refusal(analyseVoice(bytes, "audio/ogg", { maxDurationMs: 1000, decodeTimeoutMs: 10_000 }))).toEqual({ status: 422, code: "VOICE_TOO_LONG" });
    expect(await refusal(analyseVoice(bytes, "audio/ogg", { maxDurationMs: 60_000, decodeTimeoutMs: 0 }))).toEqual({ status: 422, code: "VOICE_DECODE_TIMEOUT" });
  });
});

describe("voice messages in Matrix content", () => {
  const element = {
    msgtype: "m.audio",
    body: "Voice message",
    url: "mxc://example.org/abc",
    info: { mimetype: "audio/ogg", size: 6887, duration: 2000 },
    "org.matrix.msc1767.audio": { duration: 2003, waveform: [0, 512, 1024] },
    "org.matrix.msc3245.voice": {},
  };

  test("Element's voice message: the MSC1767 duration and waveform; content_type voice", () => {
    expect(voiceFromContent(element)).toEqual({ voice_duration_ms: 2003, voice_waveform: [0, 512, 1024] });
    expect(contentTypeOf("m.audio", element)).toBe("voice");
  });

  test("info.duration when the audio block has none; bad values become null; waveform values are clamped to 0..1024", () => {
    const { "org.matrix.msc1767.audio": _, ...bare } = element;
    expect(voiceDetails(bare)).toEqual({ durationMs: 2000, waveform: null });
    expect(voiceDetails({ ...element, "org.matrix.msc1767.audio": { duration: -5, waveform: [1, "x"] }, info: {} })).toEqual({ durationMs: null, waveform: null });
    expect(voiceDetails({ ...element, "org.matrix.msc1767.audio": { duration: 10.4, waveform: [-3, 2000, 7.6] } })).toEqual({ durationMs: 10, waveform: [0, 1024, 8] });
    expect(voiceDetails({ ...element, "org.matrix.msc1767.audio": { waveform: new Array(5000).fill(1) } })!.waveform).toHaveLength(1024);
  });

  test("without the voice marker, or not m.audio, it is no voice message", () => {
    const { "org.matrix.msc3245.voice": _, ...plain } = element;
    expect(voiceFromContent(plain)).toBeNull();
    expect(contentTypeOf("m.audio", plain)).toBe("audio");
    expect(voiceFromContent({ ...element, msgtype: "m.file" })).toBeNull();
    expect(voiceFromContent({ ...element, "org.matrix.msc3245.voice": true })).toBeNull();
    // MSC2516's older marker is read too.
    expect(contentTypeOf("m.audio", { ...plain, "org.matrix.msc2516.voice": {} })).toBe("voice");
  });
});
