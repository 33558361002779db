import { Elysia, t } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { requestIdempotentId } from "../../http/idempotency.ts";
import { ErrorBody } from "../../http/errors.ts";
import { AppError } from "../../errors.ts";
import { toMessageView } from "../messages/view.ts";
import { MessageParams, MessageView } from "../messages/model.ts";
import { ChannelIdParams } from "../channels/model.ts";
import { tooLarge, type FileService } from "./service.ts";

// Room for the multipart framing and a caption around the file itself.
const FORM_OVERHEAD_BYTES = 64 * 1024;

const UploadBody = t.Object(
  {
    file: t.Optional(t.File({ description: "The file; its part's Content-Type is the file's type" })),
    text: t.Optional(t.String({ minLength: 1, maxLength: 10000, description: "A caption (default: the file name)" })),
    thread_id: t.Optional(t.String({ format: "uuid", description: "Post into the thread of this message" })),
    reply_to: t.Optional(t.String({ format: "uuid" })),
    voice: t.Optional(
      t.BooleanString({
        description:
          "`true`: the file is a voice recording (Ogg/Opus, audio/ogg). It is sent as Element sends a voice message (m.audio with org.matrix.msc3245.voice and org.matrix.msc1767.audio: duration in ms and waveform), read from the file; another format is 415 UNSUPPORTED_VOICE_FORMAT, an unreadable file 422 INVALID_VOICE_FILE, a longer one than VOICE_MAX_DURATION_MS 422 VOICE_TOO_LONG",
      }),
    ),
  },
  { additionalProperties: false },
);

export const filesController = (files: FileService) =>
  new Elysia({ name: "files.controller", prefix: "/api/messaging/channels" })
    .post(
      "/:id/files",
      async ({ request, headers, params, body, set }) => {
        const caller = await authenticate(request);
        if (!(body.file instanceof Blob)) {
          throw new AppError(400, "FILE_REQUIRED", "send the file as multipart/form-data in the field 'file'");
        }
        const { row, confirmed } = await files.upload(caller, params.id, {
          file: body.file as File,
          caption: body.text ?? null,
          threadId: body.thread_id ?? null,
          replyTo: body.reply_to ?? null,
          voice: body.voice === true,
          // With an Idempotency-Key the message id derives from it, so a retry after a crash finds the first upload's message.
          id: requestIdempotentId(request, caller),
        });
        set.status = confirmed ? 201 : 202;
        return toMessageView(row);
      },
      {
        // Reads the body itself so an oversized upload is refused once the limit is crossed,
        // not after the whole body has been buffered.
        parse: async ({ request }) => {
          // No identity, no reading of the body.
          await authenticate(request);
          return parseBoundedForm(request, files.maxUploadBytes);
        },
        headers: IdentityHeaders,
        params: ChannelIdParams,
        body: UploadBody,
        response: {
          201: MessageView,
          400: ErrorBody,
          401: ErrorBody,
          403: ErrorBody,
          404: ErrorBody,
          413: ErrorBody,
          415: ErrorBody,
          422: ErrorBody,
          502: ErrorBody,
          503: ErrorBody,
        },
        detail: {
          summary: "Upload a file (multipart field `file`); it becomes an m.image, m.audio, m.video or m.file message, or with `voice=true` a voice message",
          tags: ["messages"],
        },
      },
    )
    .get(
      "/:id/messages/:message_id/file",
      async ({ request, headers, params }) => files.download(await authenticate(request), params.id, params.message_id),
      {
        headers: IdentityHeaders,
        params: MessageParams,
        detail: {
          summary: "Download a media message's file (streamed from the Matrix media repository)",
          tags: ["messages"],
          responses: {
            200: { description: "The file, with its Content-Type and Content-Disposition" },
            401: { description: "No identity" },
            404: { description: "Unknown or hidden channel, or not a media message" },
            502: { description: "The media repository failed" },
          },
        },
      },
    );

async function parseBoundedForm(request: Request, maxFileBytes: number): Promise<Record<string, unknown>> {
  const type = request.headers.get("content-type") ?? "";
  if (!type.toLowerCase().startsWith("multipart/form-data")) {
    throw new AppError(400, "FILE_REQUIRED", "send the file as multipart/form-data in the field 'file'");
  }
  const limit = maxFileBytes + FORM_OVERHEAD_BYTES;
  const declared = Number(request.headers.get("content-length"));
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(maxFileBytes);
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = request.body?.getReader();
  if (reader) {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > limit) {
        await reader.cancel().catch(() => {});
        throw tooLarge(maxFileBytes);
      }
      chunks.push(value);
    }
  }
  let form: Awaited<ReturnType<Response["formData"]>>;
  try {
    form = await new Response(new Blob(chunks), { headers: { "content-type": type } }).formData();
  } catch {
    throw new AppError(400, "INVALID_BODY", "the multipart body could not be read");
  }
  const body: Record<string, unknown> = {};
  for (const [key, value] of form.entries()) body[key] = value;
  return body;
}
