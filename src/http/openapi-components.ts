import type { TSchema } from "elysia";
import { ErrorBody } from "./errors.ts";
import { ChannelView } from "../features/channels/model.ts";
import { MessageView } from "../features/messages/model.ts";
import { ChannelEventView, MemberView, PendingInviteView, RemovedMemberView } from "../features/members/model.ts";
import { MatrixErrorBody } from "../wire/matrix-error.ts";
import { PinView } from "../features/pins/model.ts";
import { ReadStateView, TypingView } from "../features/presence/model.ts";
import { CallView, TurnServerView } from "../features/calls/model.ts";

/**
 * The schemas /docs/json names in components.schemas: wherever a route's body or answer is one of
 * them, the document says `$ref` instead of repeating it. Request bodies stay inline (src/http/openapi.ts).
 */
export const NAMED_SCHEMAS: Record<string, TSchema> = {
  Error: ErrorBody,
  MatrixError: MatrixErrorBody,
  Channel: ChannelView,
  Message: MessageView,
  Member: MemberView,
  PendingInvite: PendingInviteView,
  RemovedMember: RemovedMemberView,
  ChannelEvent: ChannelEventView,
  Pin: PinView,
  Typing: TypingView,
  ReadState: ReadStateView,
  Call: CallView,
  TurnServer: TurnServerView,
};
