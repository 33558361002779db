import type { TSchema } from "elysia";
import { ErrorBody } from "./errors.ts";
import { ChannelView } from "../modules/channels/model.ts";
import { MessageView } from "../modules/messages/model.ts";
import { MemberView, PendingInviteView } from "../modules/members/model.ts";
import { MatrixErrorBody } from "../modules/appservice/model.ts";
import { ChannelEventView, RemovedMemberView } from "../features/membership/model.ts";
import { PinView } from "../features/pins/model.ts";
import { ReadStateView, TypingView } from "../features/presence/model.ts";

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
};
