import { Elysia } from "elysia";
import { callerFrom } from "../../http/identity.ts";
import type { Sql } from "../../store/db.ts";
import { readableChannel } from "../access.ts";
import { WsParams, WsQuery, channelTopic } from "./model.ts";

/**
 * /ws/messaging/{channel_id}: one Bun pub/sub topic per channel; the channel actor publishes
 * every frame once, in seq order. The upgrade is refused with a JSON error (401, or 404 for
 * an unknown channel or one the caller may not read) before any socket exists.
 */
export const wsController = (sql: Sql) =>
  new Elysia({ name: "ws.controller" }).ws("/ws/messaging/:channel_id", {
    params: WsParams,
    query: WsQuery,
    async beforeHandle({ params, query, headers }) {
      const caller = callerFrom(headers["x-user-id"] ?? query.user_id);
      await readableChannel(sql, caller, params.channel_id);
    },
    open(ws) {
      ws.subscribe(channelTopic(ws.data.params.channel_id));
    },
    message(ws, message) {
      if (message === "ping") {
        ws.send("pong");
        return;
      }
      ws.send(JSON.stringify({ type: "error", error: "UNKNOWN_FRAME", message: 'the server understands "ping"' }));
    },
    close(ws) {
      ws.unsubscribe(channelTopic(ws.data.params.channel_id));
    },
    detail: { summary: "Live channel events (message.created, member.joined, channel.updated)", tags: ["realtime"] },
  });
