import { Elysia } from "elysia";
import { authenticate, IdentityHeaders } from "../../http/identity.ts";
import { MessageParams } from "../messages/model.ts";
import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { findMessage } from "../../store/messages.ts";
import { MatrixError } from "../../matrix/port.ts";
import { AppError, notFound } from "../../errors.ts";
import { downloadHeaders } from "../files/policy.ts";

/**
 * A link preview's image, streamed from the Matrix media repository like a file (authenticated
 * media on Synapse, the local backend's media table): clients never load it from the linked
 * site. The read right is the channel's.
 */
export class PreviewImageService {
  constructor(private readonly deps: ServiceDeps) {}

  async image(callerId: string, channelId: string, messageId: string): Promise<Response> {
    await readableChannel(this.deps.sql, callerId, channelId);
    const row = await findMessage(this.deps.sql, channelId, messageId);
    const mxc = row && !row.deleted_at ? row.link_preview?.image_url : null;
    if (!mxc) throw notFound("link preview image");
    let media;
    try {
      media = await this.deps.matrix.downloadMedia(mxc);
    } catch (err) {
      if (err instanceof MatrixError && err.errcode === "M_NOT_FOUND") throw notFound("link preview image");
      throw new AppError(502, "MATRIX_UNAVAILABLE", "the Matrix media repository did not return the image");
    }
    return new Response(media.body, { headers: downloadHeaders(media.contentType, "link-preview", media.size) });
  }
}

export const previewsController = (previews: PreviewImageService) =>
  new Elysia({ name: "previews.controller", prefix: "/api/messaging/channels" }).get(
    "/:id/messages/:message_id/link-preview/image",
    async ({ request, headers, params }) => previews.image(await authenticate(request), params.id, params.message_id),
    {
      headers: IdentityHeaders,
      params: MessageParams,
      detail: {
        summary: "A message's link preview image (streamed from the Matrix media repository)",
        tags: ["messages"],
        responses: {
          200: { description: "The image, with its Content-Type" },
          401: { description: "No identity" },
          404: { description: "Unknown or hidden channel, or a message without a preview image" },
          502: { description: "The media repository failed" },
        },
      },
    },
  );
