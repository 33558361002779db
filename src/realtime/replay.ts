import type { ServerWebSocket } from "bun";
import type { Sql } from "../store/db.ts";
import type { MessageRow } from "../store/rows.ts";
import type { RealtimeDeps } from "./deps.ts";
import { countAfter, messagesAfter } from "../store/messages.ts";
import { extrasOf } from "../store/message-extras.ts";
import { toMessageView } from "../features/messages/view.ts";
import { CLOSE_RESYNC_REQUIRED, CLOSE_TRY_AGAIN, REPLAY_MAX_MESSAGES } from "./replay-model.ts";
import { AppError } from "../errors.ts";
import { CLOSE_SLOW_CONSUMER } from "./fanout.ts";

const PAGE = 200;
const OPEN = 1;

/** What a replay needs of a socket: Bun's ServerWebSocket (Elysia's copy of its type lacks getBufferedAmount). */
export type ReplaySocket = Pick<ServerWebSocket<unknown>, "send" | "readyState" | "getBufferedAmount" | "close" | "subscribe" | "unsubscribe">;

/** Where the socket's live frames come from (the channel fan-out). */
export interface LiveFeed {
  subscribe(): void;
  unsubscribe(): void;
}
export const replaySocket = (raw: unknown) => raw as ReplaySocket;

const drainWaiters = new WeakMap<object, () => void>();

/** Called from the socket's drain and close handlers: a replay waiting for room goes on. */
export function socketDrained(socket: object) {
  const wake = drainWaiters.get(socket);
  drainWaiters.delete(socket);
  wake?.();
}

/** How long a replay waits for a socket to take more before treating it as a slow consumer. */
const DRAIN_TIMEOUT_MS = 30_000;

/** False when the socket did not drain in time (and is closed as a slow consumer). */
async function drained(socket: ReplaySocket): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([
    new Promise<boolean>((resolve) => drainWaiters.set(socket, () => resolve(true))),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), DRAIN_TIMEOUT_MS))),
  ]);
  clearTimeout(timer);
  drainWaiters.delete(socket);
  if (!ok && socket.readyState === OPEN) socket.close(CLOSE_SLOW_CONSUMER, "slow consumer: resume with since_seq");
  return ok;
}

/** message.created frames as the live ones are, with the message as it is now (edits, reactions, replies). */
export async function framesOf(sql: Sql, rows: MessageRow[]): Promise<{ seq: number; data: string }[]> {
  const ids = rows.map((r) => r.id);
  const { threads, reactions } = await extrasOf(sql, ids, null);
  return rows.map((row) => {
    const view = toMessageView(row, threads.get(row.id), reactions.get(row.id) ?? []);
    return { seq: view.seq, data: JSON.stringify({ type: "message.created", seq: view.seq, message: view }) };
  });
}

/**
 * Sends every message after sinceSeq, then subscribes the socket to the live frames, with no
 * gap and no duplicate. The bulk is sent outside the channel's actor, page by page, waiting
 * for the socket to drain so a large replay does not trip the backpressure limit and does not
 * hold up the channel. The last stretch runs as a job in the actor: no frame of the channel can
 * be published while it reads the tail and subscribes, so the live frames start exactly after it.
 */
export async function replayThenSubscribe(
  deps: RealtimeDeps,
  socket: ReplaySocket,
  channelId: string,
  live: LiveFeed,
  sinceSeq: number,
  backpressureLimit: number,
  /** False for a join that did not ask to resume (cluster mode starts it at its upgrade's seq): no `resumed` frame. */
  announce = true,
): Promise<void> {
  live.unsubscribe();
  const { sql } = deps;
  const toReplay = await countAfter(sql, channelId, sinceSeq);
  if (toReplay > REPLAY_MAX_MESSAGES) {
    socket.send(JSON.stringify({ type: "resync_required", seq: deps.registry.seqOf(channelId), since_seq: sinceSeq, max_replay: REPLAY_MAX_MESSAGES }));
    socket.close(CLOSE_RESYNC_REQUIRED, "resync required");
    return;
  }
  let cursor = sinceSeq;
  let replayed = 0;
  /** Sends page by page from the cursor (up to `upTo`); false once the socket is gone (or did not drain when waited for). */
  const sendFromCursor = async (waitForRoom: boolean, upTo = Number.MAX_SAFE_INTEGER): Promise<boolean> => {
    for (;;) {
      // Already there (a join at the live point): nothing to read.
      if (cursor >= upTo) return true;
      const rows = (await messagesAfter(sql, channelId, cursor, PAGE)).filter((row) => Number(row.seq) <= upTo);
      for (const frame of await framesOf(sql, rows)) {
        if (socket.readyState !== OPEN) return false;
        socket.send(frame.data);
        cursor = frame.seq;
        replayed++;
        if (waitForRoom && socket.getBufferedAmount() > backpressureLimit / 2 && !(await drained(socket))) return false;
      }
      if (rows.length < PAGE) return true;
    }
  };
  if (!(await sendFromCursor(true))) return;
  try {
    // What the client has: everything up to the cursor if it resumes, or if the replay sent it something.
    const reached = announce || replayed > 0 ? cursor : 0;
    await (deps.observer ?? deps.registry).observe(channelId, async (point) => {
      // At the live point: only what arrived since the bulk, up to the last message delivered live.
      if (!(await sendFromCursor(false, point.seq)) || socket.readyState !== OPEN) return;
      live.subscribe();
      if (announce) socket.send(JSON.stringify({ type: "resumed", seq: point.seq, since_seq: sinceSeq, replayed }));
    }, reached);
  } catch (err) {
    if (socket.readyState !== OPEN) return;
    // A full mailbox (or a shutdown): the client reconnects with the last seq it got.
    const known = err instanceof AppError;
    socket.send(JSON.stringify({ type: "error", error: known ? err.code : "INTERNAL", message: "the replay could not finish; resume again with the last seq received" }));
    socket.close(CLOSE_TRY_AGAIN, "try again");
  }
}
