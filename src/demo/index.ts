import { Elysia } from "elysia";

const DEMO_DIR = new URL("../../public/demo/", import.meta.url);
const FILES: Record<string, string> = { "/": "index.html", "/demo/demo.js": "demo.js", "/demo/demo.css": "demo.css" };

/**
 * The demo page at / and its two static files, read from public/demo on each request (so a
 * `bun --hot` session shows edits at once). Only in AUTH_MODE=dev: its identity picker is the
 * X-User-Id header, which jwt mode does not accept, so elsewhere / stays a 404.
 */
export const demoController = (enabled: boolean) => {
  const app = new Elysia({ name: "demo.controller" });
  if (!enabled) return app;
  for (const [path, file] of Object.entries(FILES)) {
    app.get(path, () => new Response(Bun.file(new URL(file, DEMO_DIR)), { headers: { "cache-control": "no-cache" } }), { detail: { hide: true } });
  }
  return app;
};
