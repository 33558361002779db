import { refuseIfEncrypted } from "../../domain/confidential.ts";
import type { SendOutcome } from "../../channel/registry.ts";
import { sendTargets } from "../../channel/targets.ts";
import type { ServiceDeps } from "../deps.ts";
import { findMessage } from "../../store/messages.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { writeRight } from "../../domain/rights.ts";
import { toMatrixUserId } from "../../domain/ids.ts";
import { MatrixError } from "../../matrix/port.ts";
import { AppError, notFound } from "../../errors.ts";
import { ALLOWED_MIME_TYPES, downloadHeaders, imageSize, msgtypeFor, normaliseMime } from "./policy.ts";
import { analyseVoice, DEFAULT_VOICE_LIMITS, unsupportedVoiceFormat, VOICE_MIME_TYPES, type VoiceAnalysis, type VoiceLimits } from "../voice/analyse.ts";
import { VOICE_BODY, VOICE_FILENAME, voiceContent } from "../voice/content.ts";

export interface Upload {
  file: File;
  caption: string | null;
  threadId: string | null;
  replyTo: string | null;
  /** A voice recording (Ogg/Opus): sent as Element's voice message, with its duration and waveform. */
  voice?: boolean;
  /** The message id, derived from an Idempotency-Key: a rerun finds the message (and file) of the first attempt. */
  id?: string;
}

export const tooLarge = (max: number) =>
  new AppError(413, "FILE_TOO_LARGE", `the file is larger than the ${max} bytes allowed (MAX_UPLOAD_BYTES)`);

export class FileService {
  constructor(
    private readonly deps: ServiceDeps,
    readonly maxUploadBytes: number,
    private readonly voiceLimits: VoiceLimits = DEFAULT_VOICE_LIMITS,
  ) {}

  /**
   * Stores the file in the Matrix media repository as the sender, then sends the media
   * message through the channel actor like any other message (seq, WebSocket, NATS).
   * Rights are checked before anything is uploaded.
   */
  async upload(callerId: string, channelId: string, upload: Upload): Promise<SendOutcome> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    const { joinFirst } = writeRight(access, callerId);
    // Before the upload: the media repository would keep the file in plaintext.
    refuseIfEncrypted(access.channel);
    const { file } = upload;
    if (file.size > this.maxUploadBytes) throw tooLarge(this.maxUploadBytes);
    if (file.size === 0) throw new AppError(400, "FILE_REQUIRED", "the file is empty");
    const mimetype = normaliseMime(file.type);
    if (upload.voice && !VOICE_MIME_TYPES.has(mimetype)) {
      throw unsupportedVoiceFormat(`'${mimetype || "unknown"}' is not`);
    }
    if (!ALLOWED_MIME_TYPES.has(mimetype)) {
      throw new AppError(415, "UNSUPPORTED_MEDIA_TYPE", `files of type '${mimetype || "unknown"}' are not accepted`);
    }
    // Before the upload too: a refused send must not leave its file in the media repository.
    await sendTargets(this.deps.sql, channelId, upload.replyTo, upload.threadId);
    const filename = cleanFilename(file.name, upload.voice ? VOICE_FILENAME : "file");
    const bytes = new Uint8Array(await file.arrayBuffer());
    // Before the upload as well: a recording that cannot be read is refused with nothing stored or sent.
    const voice = upload.voice ? await analyseVoice(bytes, mimetype, this.voiceLimits) : null;
    // A rerun whose first attempt got as far as the message reuses its file rather than storing another.
    const earlier = upload.id ? await findMessage(this.deps.sql, channelId, upload.id) : null;
    const contentUri = earlier?.media_url ?? (await this.store(callerId, bytes, mimetype, filename));
    if (voice) return this.sendVoice(callerId, channelId, upload, { url: contentUri, mimetype, size: bytes.byteLength, filename }, voice, joinFirst);
    const msgtype = msgtypeFor(mimetype);
    const info: Record<string, unknown> = { mimetype, size: bytes.byteLength };
    const dimensions = msgtype === "m.image" ? imageSize(bytes) : null;
    if (dimensions) Object.assign(info, dimensions);
    return this.deps.registry.send(channelId, {
      id: upload.id,
      senderId: callerId,
      // Matrix v1.10 media captions: `body` is the caption when `filename` differs from it.
      text: upload.caption ?? filename,
      msgtype,
      formattedBody: null,
      replyTo: upload.replyTo,
      threadId: upload.threadId,
      extraContent: { url: contentUri, info, filename },
      joinFirst,
    }, this.deps.sendConfirmMs);
  }

  /** An m.audio as Element sends a voice message; the caption, if any, is its body. */
  private sendVoice(
    callerId: string,
    channelId: string,
    upload: Upload,
    file: { url: string; mimetype: string; size: number; filename: string },
    voice: VoiceAnalysis,
    joinFirst: boolean,
  ): Promise<SendOutcome> {
    const body = upload.caption ?? VOICE_BODY;
    return this.deps.registry.send(channelId, {
      id: upload.id,
      senderId: callerId,
      text: body,
      msgtype: "m.audio",
      formattedBody: null,
      replyTo: upload.replyTo,
      threadId: upload.threadId,
      extraContent: voiceContent({ ...file, body, caption: upload.caption !== null }, voice),
      joinFirst,
    }, this.deps.sendConfirmMs);
  }

  private async store(callerId: string, bytes: Uint8Array, mimetype: string, filename: string): Promise<string> {
    const sender = toMatrixUserId(callerId, this.deps.matrix.serverName);
    try {
      return (await this.deps.matrix.uploadMedia(sender, bytes, mimetype, filename)).contentUri;
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === "M_TOO_LARGE") throw tooLarge(this.maxUploadBytes);
      const errcode = err instanceof MatrixError ? err.errcode : "M_UNKNOWN";
      throw new AppError(502, "MATRIX_UNAVAILABLE", `the Matrix media repository refused the file (${errcode})`);
    }
  }

  /** The file of a media message, streamed from the media repository; the read right is the channel's. */
  async download(callerId: string, channelId: string, messageId: string): Promise<Response> {
    await readableChannel(this.deps.sql, callerId, channelId);
    const row = await findMessage(this.deps.sql, channelId, messageId);
    if (!row || row.deleted_at || !row.media_url) throw notFound("file");
    let media;
    try {
      media = await this.deps.matrix.downloadMedia(row.media_url);
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === "M_NOT_FOUND") throw notFound("file");
      throw new AppError(502, "MATRIX_UNAVAILABLE", "the Matrix media repository did not return the file");
    }
    const mime = row.media_mimetype ?? media.contentType;
    return new Response(media.body, { headers: downloadHeaders(mime, row.media_filename, media.size) });
  }
}

/** A name for Content-Disposition and Matrix: no path, no control characters. */
function cleanFilename(name: string | undefined, fallback: string): string {
  const base = (name ?? "").split(/[\\/]/).pop()!.replace(/[\x00-\x1f\x7f]/g, "").trim();
  return (base || fallback).slice(0, 255);
}
