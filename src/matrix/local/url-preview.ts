import type { AddressGuard } from "../../domain/fetch-guard.ts";
import { imageSize } from "../../domain/image-size.ts";
import { MatrixError } from "../port.ts";
import { FetchRefused, guardedFetch, type Fetched } from "./guarded-fetch.ts";
import { openGraphOf } from "./open-graph.ts";

/**
 * The local backend's preview_url: what Synapse does for its clients, done by the service
 * itself (README "Link previews"). The page is fetched through the guard; an HTML page gives its
 * Open Graph data, an image link the image itself. The image is copied into the local media
 * repository, so og:image is an mxc:// URI as Synapse answers it: clients load it through the
 * service, never from the third-party site.
 */
export interface UrlPreviewOptions {
  guard: AddressGuard;
  /** For the page and its image together. */
  timeoutMs: number;
  /** For the page (read up to here, the rest never) and for the image (a bigger one is skipped). */
  maxBytes: number;
  /** DNS, for tests; the system resolver by default. */
  resolve?: (hostname: string) => Promise<string[]>;
}

const HTML_TYPES = new Set(["text/html", "application/xhtml+xml"]);
/** Images a browser shows and cannot run (no SVG): what the service will serve back inline. */
export const PREVIEW_IMAGE_TYPES = new Set(["image/png", "image/jpeg", "image/gif", "image/webp", "image/avif"]);

export type StoreImage = (bytes: Uint8Array, contentType: string) => Promise<string>;

export async function previewUrl(link: string, opts: UrlPreviewOptions, store: StoreImage): Promise<Record<string, unknown>> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  try {
    const page = await guardedFetch(link, {
      guard: opts.guard,
      maxBytes: opts.maxBytes,
      accept: (type) => HTML_TYPES.has(type) || PREVIEW_IMAGE_TYPES.has(type),
      signal,
      resolve: opts.resolve,
    });
    if (PREVIEW_IMAGE_TYPES.has(page.contentType)) {
      if (page.truncated) throw new FetchRefused(`larger than ${opts.maxBytes} bytes`);
      return imageFields(page, await store(page.body, page.contentType));
    }
    const og: Record<string, unknown> = openGraphOf(page.body, page.charset, page.url);
    const image = typeof og["og:image"] === "string" ? (og["og:image"] as string) : null;
    delete og["og:image"];
    const copied = image ? await copiedImage(image, opts, signal, store) : {};
    if (!copied["og:image"]) {
      delete og["og:image:width"];
      delete og["og:image:height"];
    }
    return { ...og, ...copied };
  } catch (err) {
    throw asMatrixError(err, signal);
  }
}

/** The page's image, copied into the media repository; nothing when it cannot be had (the preview goes without). */
async function copiedImage(link: string, opts: UrlPreviewOptions, signal: AbortSignal, store: StoreImage): Promise<Record<string, unknown>> {
  try {
    const image = await guardedFetch(link, {
      guard: opts.guard,
      maxBytes: opts.maxBytes,
      accept: (type) => PREVIEW_IMAGE_TYPES.has(type),
      whole: true,
      signal,
      resolve: opts.resolve,
    });
    return imageFields(image, await store(image.body, image.contentType));
  } catch (err) {
    if (signal.aborted) throw err;
    return {};
  }
}

function imageFields(image: Fetched, mxc: string): Record<string, unknown> {
  const size = imageSize(image.body);
  return {
    "og:image": mxc,
    "og:image:type": image.contentType,
    "matrix:image:size": image.body.byteLength,
    ...(size ? { "og:image:width": size.w, "og:image:height": size.h } : {}),
  };
}

/** As Synapse answers: a refusal is 403, a page that could not be had 502, the time limit 504. */
function asMatrixError(err: unknown, signal: AbortSignal): MatrixError {
  if (err instanceof MatrixError) return err;
  if (signal.aborted) return new MatrixError("M_UNKNOWN", "the page took too long", 504);
  if (err instanceof FetchRefused) return new MatrixError("M_UNKNOWN", err.message, 403);
  return new MatrixError("M_UNKNOWN", `the page could not be fetched (${err instanceof Error ? err.name : "error"})`, 502);
}
