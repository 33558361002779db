import { t } from "elysia";
import type { Static } from "@sinclair/typebox";

/** A message's link preview as every view shows it (README "Link previews"). */
export const LinkPreviewView = t.Object(
  {
    url: t.String({ description: "The link in the message that was previewed" }),
    title: t.Nullable(t.String()),
    description: t.Nullable(t.String()),
    site_name: t.Nullable(t.String()),
    image_url: t.Nullable(
      t.String({ description: "The preview image's mxc:// URI in the Matrix media repository (Synapse's preview, an Element client's bundled preview, or the built-in fetcher's copy)" }),
    ),
    image_width: t.Nullable(t.Integer({ minimum: 0 })),
    image_height: t.Nullable(t.Integer({ minimum: 0 })),
    image_download_path: t.Nullable(t.String({ description: "Where the service streams the image (read right on the channel needed); null without an image" })),
  },
  { description: "The preview of the first link in a message: title, description, image and site name (Open Graph)" },
);
export type LinkPreviewView = Static<typeof LinkPreviewView>;

/** What the index keeps of a preview (messages.link_preview, link_preview_cache): the view without the service's own path. */
export type LinkPreview = Omit<LinkPreviewView, "image_download_path">;
