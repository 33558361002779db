/**
 * What may be uploaded, and how a file becomes a Matrix media message. The allow-list keeps
 * out types a browser would run (HTML, SVG with script, executables); anything not listed is
 * refused on upload and served as an opaque download when it comes from a Matrix client.
 */
export const ALLOWED_MIME_TYPES = new Set([
  "image/png",
  "image/jpeg",
  "image/gif",
  "image/webp",
  "image/avif",
  "image/heic",
  "audio/mpeg",
  "audio/mp4",
  "audio/aac",
  "audio/ogg",
  "audio/opus",
  "audio/wav",
  "audio/x-wav",
  "audio/webm",
  "audio/flac",
  "video/mp4",
  "video/webm",
  "video/ogg",
  "video/quicktime",
  "application/pdf",
  "text/plain",
  "text/markdown",
  "text/csv",
  "application/json",
  "application/zip",
  "application/gzip",
  "application/x-tar",
  "application/x-7z-compressed",
  "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/vnd.oasis.opendocument.text",
  "application/vnd.oasis.opendocument.spreadsheet",
  "application/vnd.oasis.opendocument.presentation",
  "application/msword",
  "application/vnd.ms-excel",
  "application/vnd.ms-powerpoint",
]);

/** `Image/PNG; charset=x` -> `image/png`. */
export function normaliseMime(type: string | null | undefined): string {
  return (type ?? "").split(";")[0]!.trim().toLowerCase();
}

export function msgtypeFor(mime: string): "m.image" | "m.audio" | "m.video" | "m.file" {
  if (mime.startsWith("image/")) return "m.image";
  if (mime.startsWith("audio/")) return "m.audio";
  if (mime.startsWith("video/")) return "m.video";
  return "m.file";
}

/**
 * How a download is served: listed types as themselves (media inline, so <img>/<audio> work),
 * anything else as an opaque attachment, and never sniffed by the browser.
 */
export function downloadHeaders(mime: string | null, filename: string | null, size: number | null): Record<string, string> {
  const type = normaliseMime(mime);
  const allowed = ALLOWED_MIME_TYPES.has(type);
  const inline = allowed && /^(image|audio|video)\//.test(type);
  const headers: Record<string, string> = {
    "content-type": allowed ? type : "application/octet-stream",
    "content-disposition": contentDisposition(inline ? "inline" : "attachment", filename ?? "file"),
    "x-content-type-options": "nosniff",
    "cache-control": "private, max-age=3600",
  };
  if (size !== null) headers["content-length"] = String(size);
  return headers;
}

/** RFC 6266: an ASCII fallback plus the UTF-8 name (RFC 5987). */
function contentDisposition(kind: string, filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]|["\\]/g, "_");
  return `${kind}; filename="${ascii}"; filename*=UTF-8''${encodeURIComponent(filename)}`;
}

export { imageSize } from "../../domain/image-size.ts";
