import { Elysia } from "elysia";
import { Value } from "@sinclair/typebox/value";
import { AppError } from "../errors.ts";
import type { RealtimeDeps } from "./deps.ts";
import { withIdentity } from "../http/auth/scope.ts";
import { authorizeSocket, recheckSocket, socketIdentity } from "./auth.ts";
import { PresenceService } from "../features/presence/service.ts";
import { replayThenSubscribe, socketDrained, replaySocket, type ReplaySocket } from "./replay.ts";
import { lastSeq } from "../store/messages.ts";
import { ClientFrame, WsParams, WsQuery } from "./model.ts";
import type { ChannelFanout } from "./fanout.ts";
import { FrameFlood, WS_FLOOD_CLOSE_CODE } from "./flood.ts";
import { closeWhenTokenExpires, forgetTokenExpiry } from "./expiry.ts";

/** Cluster mode: the channel's last seq when a plain join was upgraded, where its frames start. */
const joinPoints = new WeakMap<Request, number>();

/** One replay at a time per socket: a resume frame sent during a replay starts after it. */
const replays = new WeakMap<object, Promise<void>>();

/**
 * /ws/messaging/{channel_id}: the channel actor publishes every frame once, in seq order, to
 * the channel's subscribers (ChannelFanout). The upgrade is refused with a JSON error (401, or 404 for
 * an unknown channel or one the caller may not read, 400 for a bad since_seq) before any
 * socket exists.
 */
export const wsController = (deps: RealtimeDeps, fanout: ChannelFanout, backpressureLimit: number, maxFramesPerSecond = 0) => {
  const feed = (socket: ReplaySocket, channelId: string) => ({
    subscribe: () => fanout.subscribe(channelId, socket),
    unsubscribe: () => fanout.unsubscribe(channelId, socket),
  });
  const resume = (socket: ReplaySocket, channelId: string, sinceSeq: number, announce = true) => {
    const previous = replays.get(socket) ?? Promise.resolve();
    const next = previous.then(() =>
      replayThenSubscribe(deps, socket, channelId, feed(socket, channelId), sinceSeq, backpressureLimit, announce).catch((err) => {
        deps.log.warn({ channel_id: channelId, err: String(err) }, "websocket replay failed");
        if (socket.readyState === 1) socket.close(1011, "replay failed");
      }),
    );
    replays.set(socket, next);
    return next;
  };
  return new Elysia({ name: "ws.controller" }).ws("/ws/messaging/:channel_id", {
    params: WsParams,
    query: WsQuery,
    async beforeHandle({ params, query, request, set }) {
      const protocol = await authorizeSocket(deps, request, params.channel_id);
      if (protocol) set.headers["sec-websocket-protocol"] = protocol;
      if (query.since_seq !== undefined) await checkSinceSeq(deps, params.channel_id, parseSinceSeq(query.since_seq));
      // Cluster mode: frames come from another instance, and a relay that starts now could miss
      // one sent just after the client saw the socket open. The join starts at this point instead.
      else if (deps.observer) joinPoints.set(request, await lastSeq(deps.sql, params.channel_id));
    },
    async open(ws) {
      const channelId = ws.data.params.channel_id;
      const since = ws.data.query.since_seq;
      // Registered by member, so a kick or a lost read right closes it (4403).
      const identity = socketIdentity(ws.data.request);
      deps.metrics?.socketOpened();
      deps.sockets.add(channelId, identity.caller, ws.raw, identity.microdaos);
      closeWhenTokenExpires(ws.raw, identity.expiresAt);
      void recheckSocket(deps, ws.data.request, channelId);
      const joinPoint = joinPoints.get(ws.data.request);
      if (since !== undefined) await resume(replaySocket(ws.raw), channelId, parseSinceSeq(since));
      else if (joinPoint !== undefined) await resume(replaySocket(ws.raw), channelId, joinPoint, false);
      else fanout.subscribe(channelId, replaySocket(ws.raw));
    },
    async message(ws, message) {
      if (FrameFlood.exceeded(ws.raw, maxFramesPerSecond)) {
        ws.close(WS_FLOOD_CLOSE_CODE, "too many frames");
        return;
      }
      if (message === "ping") {
        ws.send("pong");
        return;
      }
      const frame = parseFrame(message);
      if (!frame) {
        ws.send(
          JSON.stringify({
            type: "error",
            error: "UNKNOWN_FRAME",
            message: 'the server understands "ping", {"type":"typing","typing":true|false} and {"type":"resume","since_seq":N}',
          }),
        );
        return;
      }
      const channelId = ws.data.params.channel_id;
      try {
        if (frame.type === "resume") {
          await checkSinceSeq(deps, channelId, frame.since_seq);
          await resume(replaySocket(ws.raw), channelId, frame.since_seq);
          return;
        }
        const identity = socketIdentity(ws.data.request);
        await withIdentity(identity, () => new PresenceService(deps).setTyping(identity.caller, channelId, frame.typing, frame.timeout_ms));
      } catch (err) {
        const known = err instanceof AppError;
        ws.send(JSON.stringify({ type: "error", error: known ? err.code : "INTERNAL", message: known ? err.message : "the frame could not be handled" }));
      }
    },
    drain(ws) {
      socketDrained(ws.raw);
    },
    close(ws) {
      deps.metrics?.socketClosed();
      forgetTokenExpiry(ws.raw);
      socketDrained(ws.raw);
      fanout.unsubscribe(ws.data.params.channel_id, replaySocket(ws.raw));
      deps.sockets.remove(ws.data.params.channel_id, socketIdentity(ws.data.request).caller, ws.raw);
    },
    detail: { summary: "Live channel events (message.created, member.joined, channel.updated, typing, read), with replay from since_seq", tags: ["realtime"] },
  });
};

function parseSinceSeq(raw: string): number {
  if (!/^\d{1,15}$/.test(raw)) throw new AppError(400, "INVALID_SINCE_SEQ", "since_seq must be a non-negative integer");
  return Number(raw);
}

/** A seq the channel has not reached yet cannot have been seen: the client's state is from elsewhere. */
async function checkSinceSeq(deps: RealtimeDeps, channelId: string, sinceSeq: number) {
  const latest = Math.max(await lastSeq(deps.sql, channelId), deps.registry.seqOf(channelId));
  if (sinceSeq > latest) throw new AppError(400, "INVALID_SINCE_SEQ", `since_seq is beyond the channel's latest seq (${latest})`);
}

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
