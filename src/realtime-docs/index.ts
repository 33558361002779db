import { Elysia } from "elysia";
import { buildAsyncApiDocument } from "./asyncapi.ts";

export const ASYNCAPI_PATH = "/docs/asyncapi.json";

/** Serves the AsyncAPI document beside the OpenAPI one; built on the first request, then kept. */
export const realtimeDocsController = () => {
  let document: string | null = null;
  return new Elysia({ name: "realtime-docs.controller" }).get(
    ASYNCAPI_PATH,
    () => new Response((document ??= JSON.stringify(buildAsyncApiDocument())), { headers: { "content-type": "application/json" } }),
    { detail: { hide: true } },
  );
};
