import { Elysia } from "elysia";
import { AppError } from "../errors.ts";

// The upload route reads (and bounds) its own multipart body with MAX_UPLOAD_BYTES.
const OWN_PARSER = /^\/api\/messaging\/channels\/[^/]+\/files\/?$/;

// Homeserver transactions batch up to 50 events of up to 64 KiB each; they authenticate with hs_token.
const HOMESERVER_PUSH = /^\/_matrix\//;
const HOMESERVER_MAX_BYTES = 32 * 1024 * 1024;

const tooLarge = (maxBytes: number) => new AppError(413, "PAYLOAD_TOO_LARGE", `the request body is larger than ${maxBytes} bytes`);

/**
 * Caps every request body except uploads at `maxBytes` with a JSON 413 (Bun's own limit
 * answers an empty 413): a declared Content-Length is refused before anything is read, and a
 * chunked body is read up to the cap and refused the moment it crosses it. JSON is parsed
 * here too, so a broken body is a 400 INVALID_BODY whatever the route.
 */
export const bodyLimit = (maxBytes: number) =>
  new Elysia({ name: "body-limit" })
    .onRequest(({ request }) => {
      const declared = request.headers.get("content-length");
      if (declared === null || OWN_PARSER.test(new URL(request.url).pathname)) return;
      if (!/^\d+$/.test(declared)) throw new AppError(400, "INVALID_REQUEST", "Content-Length must be a number");
      const limit = limitFor(request, maxBytes);
      if (Number(declared) > limit) throw tooLarge(limit);
    })
    .onParse({ as: "global" }, async ({ request, contentType }) => {
      if (OWN_PARSER.test(new URL(request.url).pathname)) return;
      if (!request.body) return;
      const type = (contentType ?? "").toLowerCase();
      if (type.startsWith("multipart/form-data")) return;
      const text = await readBounded(request, limitFor(request, maxBytes));
      if (type.startsWith("application/json") || type.includes("+json")) {
        if (text.trim() === "") return {};
        try {
          return JSON.parse(text);
        } catch {
          throw new AppError(400, "INVALID_BODY", "the request body is not valid JSON");
        }
      }
      // Anything else is handed over as text: an object schema then refuses it with a 400.
      return text;
    });

function limitFor(request: Request, maxBytes: number): number {
  return HOMESERVER_PUSH.test(new URL(request.url).pathname) ? Math.max(maxBytes, HOMESERVER_MAX_BYTES) : maxBytes;
}

async function readBounded(request: Request, maxBytes: number): Promise<string> {
  const reader = request.body!.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new AppError(400, "INVALID_BODY", "the request body is not valid UTF-8");
  }
}
