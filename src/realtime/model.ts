import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { TypingClientFrame } from "../features/presence/model.ts";
import { ServerFrame } from "../wire/frames.ts";
import { ResumeClientFrame, ResumedFrame, ResyncRequiredFrame } from "./replay-model.ts";

export { ServerFrame };

/** What a client receives: every frame carries the channel seq it belongs to. */
export const SentFrame = t.Intersect([t.Union([ServerFrame, ResumedFrame, ResyncRequiredFrame]), t.Object({ seq: t.Integer() })]);
export type SentFrame = Static<typeof SentFrame>;

/** JSON frames a client may send (besides the plain-text "ping"). */
export const ClientFrame = t.Union([TypingClientFrame, ResumeClientFrame]);
export type ClientFrame = Static<typeof ClientFrame>;

export const WsParams = t.Object({ channel_id: t.String({ format: "uuid" }) });
export const WsQuery = t.Object({
  user_id: t.Optional(t.String({ description: "AUTH_MODE=dev: identity for browsers, which cannot set X-User-Id on a WebSocket." })),
  access_token: t.Optional(t.String({ description: "AUTH_MODE=jwt: the Bearer token, when the `bearer` subprotocol cannot carry it." })),
  since_seq: t.Optional(t.String({ description: "Replay every message after this seq, then go live (see WebSocket protocol)." })),
});

