import { Elysia } from "elysia";
import { openapi } from "@elysiajs/openapi";
import { dirname, join } from "node:path";
import { OPENAPI_VERSION } from "./openapi.ts";
import { notFound } from "../errors.ts";

export const DOCS_PATH = "/docs";
export const SPEC_PATH = "/docs/json";
const ASSETS_PATH = `${DOCS_PATH}/assets`;

/** The Swagger UI files the page loads, from the pinned swagger-ui-dist package: no CDN, works offline. */
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
  "favicon-32x32.png": "image/png",
};

const page = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <meta name="viewport" content="width=device-width, initial-scale=1" />
  <title>DAARION messaging API</title>
  <link rel="icon" href="${ASSETS_PATH}/favicon-32x32.png" />
  <link rel="stylesheet" href="${ASSETS_PATH}/swagger-ui.css" />
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${ASSETS_PATH}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({ url: "${SPEC_PATH}", dom_id: "#swagger-ui", deepLinking: true, displayOperationId: true, validatorUrl: null });
  </script>
</body>
</html>
`;

/**
 * The OpenAPI 3.1 document at /docs/json, built by @elysiajs/openapi from the routes' schemas
 * (and completed by src/http/openapi.ts), and Swagger UI at /docs served from node_modules.
 */
export const apiDocs = () => {
  const assetsDir = dirname(Bun.resolveSync("swagger-ui-dist/package.json", import.meta.dir));
  return new Elysia({ name: "api-docs" })
    .use(
      openapi({
        path: DOCS_PATH,
        specPath: SPEC_PATH,
        provider: null,
        openapiVersion: OPENAPI_VERSION,
        // The WebSocket is not an HTTP operation (its protocol is documented apart); OPTIONS is CORS preflight.
        exclude: { paths: [DOCS_PATH, SPEC_PATH, /^\/docs\//], methods: ["ws", "options"] },
        documentation: {
          info: {
            title: "DAARION messaging",
            version: "0.1.0",
            description: "Channels, messages and members of DAARION, backed by Matrix rooms.",
          },
          // Relative: the document describes whichever host serves it.
          servers: [{ url: "/", description: "This server" }],
          tags: [
            { name: "channels", description: "Channels (each a Matrix room), their settings and audit log" },
            { name: "messages", description: "Messages, threads, edits, pins, files, typing, read state and search" },
            { name: "reactions", description: "Emoji reactions (m.reaction)" },
            { name: "members", description: "Membership, invitations, roles and capabilities" },
            { name: "calls", description: "Calls indexed from Matrix (MatrixRTC and legacy 1:1 VoIP) and TURN credentials" },
            { name: "spaces", description: "A microDAO's Matrix space: its channel groups (sub-spaces) and the order of its channels" },
            { name: "internal", description: "Service-to-service endpoints" },
            { name: "matrix", description: "Application-service API for the homeserver" },
            { name: "health", description: "Liveness and readiness" },
          ],
        },
      }),
    )
    .get(DOCS_PATH, () => new Response(page, { headers: { "content-type": "text/html; charset=utf-8" } }), { detail: { hide: true } })
    .get(
      `${ASSETS_PATH}/:file`,
      ({ params }) => {
        const type = ASSETS[params.file];
        if (!type) throw notFound("docs asset");
        return new Response(Bun.file(join(assetsDir, params.file)), {
          headers: { "content-type": type, "cache-control": "public, max-age=86400" },
        });
      },
      { detail: { hide: true } },
    );
};
