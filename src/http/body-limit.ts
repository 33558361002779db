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
 * here too, so a broken body is a 400 INVALID_BODY whatever the route. Multipart is refused
 * unread outside the upload route: Elysia's own form parser would buffer it without a bound.
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
      if (type.startsWith("multipart/")) {
        throw new AppError(400, "INVALID_BODY", "multipart bodies are accepted only by file uploads (POST …/files); send application/json");
      }
      const text = await readBounded(request, limitFor(request, maxBytes));
      if (type.startsWith("application/json") || type.includes("+json")) {
        if (text.trim() === "") return {};
        let parsed: unknown;
        try {
          parsed = JSON.parse(text);
        } catch {
          throw new AppError(400, "INVALID_BODY", "the request body is not valid JSON");
        }
        // The homeserver's events carry whatever Matrix users wrote; refusing a transaction would stall the push queue.
        if (!HOMESERVER_PUSH.test(new URL(request.url).pathname)) refuseProtoKeys(parsed);
        return parsed;
      }
      // Anything else is handed over as text: an object schema then refuses it with a 400.
      return text;
    });

/**
 * JSON.parse keeps `"__proto__"` as an own key, but the first object copy (TypeBox filling in
 * defaults, a spread into a prototype-less target) turns it into the object's prototype, so
 * `additionalProperties: false` never sees it. It is an unknown field on every body: refuse it.
 */
function refuseProtoKeys(value: unknown): void {
  const pending: Array<{ value: unknown; path: string }> = [{ value, path: "" }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    if (next.value === null || typeof next.value !== "object") continue;
    for (const key of Object.keys(next.value)) {
      const path = next.path ? `${next.path}.${key}` : key;
      if (key === "__proto__") throw new AppError(400, "VALIDATION_FAILED", `invalid body field '${path}': unknown field`);
      pending.push({ value: (next.value as Record<string, unknown>)[key], path });
    }
  }
}

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
