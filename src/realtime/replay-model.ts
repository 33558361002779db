import { t } from "elysia";
import type { Static } from "@sinclair/typebox";

/** Asks for every message after since_seq, then the live frames, on a socket already open. */
export const ResumeClientFrame = t.Object({ type: t.Literal("resume"), since_seq: t.Integer({ minimum: 0 }) }, { additionalProperties: false });
export type ResumeClientFrame = Static<typeof ResumeClientFrame>;

/** Ends a replay: frames after it are live. seq is the channel's latest seq at that moment. */
export const ResumedFrame = t.Object({ type: t.Literal("resumed"), seq: t.Integer(), since_seq: t.Integer(), replayed: t.Integer() });

/** More than REPLAY_MAX_MESSAGES to replay: the client reloads through REST; the socket is then closed. */
export const ResyncRequiredFrame = t.Object({ type: t.Literal("resync_required"), seq: t.Integer(), since_seq: t.Integer(), max_replay: t.Integer() });

export const REPLAY_MAX_MESSAGES = 10_000;
/** Close code after resync_required (4000-4999 are the application's; 410 as in HTTP Gone). */
export const CLOSE_RESYNC_REQUIRED = 4410;
/** Close code when the channel's actor cannot take the replay now (its mailbox is full): retry. */
export const CLOSE_TRY_AGAIN = 1013;
