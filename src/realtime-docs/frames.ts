import { t } from "elysia";
import { CLOSE_SLOW_CONSUMER } from "../realtime/fanout.ts";
import { TOKEN_EXPIRED_CLOSE_CODE } from "../realtime/expiry.ts";
import { READ_REVOKED_CLOSE_CODE } from "../realtime/sockets.ts";
import { WS_FLOOD_CLOSE_CODE } from "../realtime/flood.ts";
import { CLOSE_RESYNC_REQUIRED, CLOSE_TRY_AGAIN } from "../realtime/replay-model.ts";

/*
 * The frames the WebSocket handler writes by hand rather than through a model (the error
 * answer and the plain-text keepalive), so that the AsyncAPI document can name them too.
 */

/** The answer to a client frame the server cannot take (or a replay that could not finish). */
export const ErrorFrame = t.Object({
  type: t.Literal("error"),
  error: t.String({
    description: "The error code, as in REST error bodies",
    examples: ["UNKNOWN_FRAME", "INVALID_SINCE_SEQ", "FORBIDDEN", "INTERNAL"],
  }),
  message: t.String(),
});

/** Plain text, not JSON: a keepalive the server answers with "pong". */
export const PingText = t.Literal("ping");
export const PongText = t.Literal("pong");

export interface CloseCode {
  code: number;
  reason: string;
  meaning: string;
  client_action: string;
}

/** Every close code the server uses, with what a client does about it. */
export const CLOSE_CODES: readonly CloseCode[] = [
  {
    code: CLOSE_SLOW_CONSUMER,
    reason: "slow consumer: resume with since_seq",
    meaning: "more than WS_BACKPRESSURE_LIMIT_BYTES waited unread (or a replay waited 30 s for the socket to drain)",
    client_action: "reconnect with since_seq",
  },
  {
    code: TOKEN_EXPIRED_CLOSE_CODE,
    reason: "token expired",
    meaning: "the JWT the socket was opened with expired (exp plus JWT_CLOCK_SKEW_S)",
    client_action: "reconnect with a fresh token and since_seq",
  },
  {
    code: READ_REVOKED_CLOSE_CODE,
    reason: "kicked, left, can_read revoked, no longer readable, or channel is now <visibility>",
    meaning: "the caller lost the right to read the channel (left, kicked, can_read false, channel made private)",
    client_action: "do not reconnect until the right is back",
  },
  {
    code: CLOSE_RESYNC_REQUIRED,
    reason: "resync required",
    meaning: "after resync_required: more messages to replay than max_replay",
    client_action: "reload the channel through REST, then reconnect with since_seq = the newest seq it returned",
  },
  {
    code: WS_FLOOD_CLOSE_CODE,
    reason: "too many frames",
    meaning: "the client sent more than WS_MAX_FRAMES_PER_SEC frames within one second",
    client_action: "reconnect (with since_seq), sending fewer frames",
  },
  {
    code: CLOSE_TRY_AGAIN,
    reason: "try again",
    meaning: "the replay could not finish now (the channel's mailbox is full); an error frame comes first",
    client_action: "reconnect with since_seq = the last seq received",
  },
  {
    code: 1011,
    reason: "replay failed",
    meaning: "the replay failed on the server's side",
    client_action: "reconnect with since_seq = the last seq received",
  },
  {
    code: 1001,
    reason: "server shutting down: reconnect with since_seq",
    meaning: "the server is stopping (SIGTERM, or a bun --hot reload)",
    client_action: "reconnect with since_seq",
  },
];
