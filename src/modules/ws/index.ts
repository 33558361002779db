import { Elysia } from "elysia";
import { Value } from "@sinclair/typebox/value";
import { AppError } from "../../errors.ts";
import type { ServiceDeps } from "../deps.ts";
import { withIdentity } from "../../http/auth/scope.ts";
import { authorizeSocket, recheckSocket, socketIdentity } from "./auth.ts";
import { setTyping } from "../../features/presence/commands.ts";
import { ClientFrame, WsParams, WsQuery, channelTopic } from "./model.ts";

/**
 * /ws/messaging/{channel_id}: one Bun pub/sub topic per channel; the channel actor publishes
 * every frame once, in seq order. The upgrade is refused with a JSON error (401, or 404 for
 * an unknown channel or one the caller may not read) before any socket exists.
 */
export const wsController = (deps: ServiceDeps) =>
  new Elysia({ name: "ws.controller" }).ws("/ws/messaging/:channel_id", {
    params: WsParams,
    query: WsQuery,
    async beforeHandle({ params, request, set }) {
      const protocol = await authorizeSocket(deps, request, params.channel_id);
      if (protocol) set.headers["sec-websocket-protocol"] = protocol;
    },
    open(ws) {
      ws.subscribe(channelTopic(ws.data.params.channel_id));
      deps.sockets.add(ws.data.params.channel_id, socketIdentity(ws.data.request).caller, ws.raw);
      void recheckSocket(deps, ws.data.request, ws.data.params.channel_id);
    },
    async message(ws, message) {
      if (message === "ping") {
        ws.send("pong");
        return;
      }
      const frame = parseFrame(message);
      if (!frame) {
        ws.send(JSON.stringify({ type: "error", error: "UNKNOWN_FRAME", message: 'the server understands "ping" and {"type":"typing","typing":true|false}' }));
        return;
      }
      try {
        const identity = socketIdentity(ws.data.request);
        await withIdentity(identity, () => setTyping(deps, identity.caller, ws.data.params.channel_id, frame.typing, frame.timeout_ms));
      } catch (err) {
        const known = err instanceof AppError;
        ws.send(JSON.stringify({ type: "error", error: known ? err.code : "INTERNAL", message: known ? err.message : "the frame could not be handled" }));
      }
    },
    close(ws) {
      ws.unsubscribe(channelTopic(ws.data.params.channel_id));
      deps.sockets.remove(ws.data.params.channel_id, socketIdentity(ws.data.request).caller, ws.raw);
    },
    detail: { summary: "Live channel events (message.created, member.joined, channel.updated, typing, read)", tags: ["realtime"] },
  });

/** Elysia hands over JSON text already parsed; anything that is not a valid client frame is null. */
function parseFrame(message: unknown): ClientFrame | null {
  let value = message;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return null;
    }
  }
  return Value.Check(ClientFrame, value) ? (value as ClientFrame) : null;
}
