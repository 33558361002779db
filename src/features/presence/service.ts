import type { ServiceDeps } from "../deps.ts";
import { readableChannel } from "../../access/channel-access.ts";
import { AppError, forbidden, notFound } from "../../errors.ts";
import { findMessage } from "../../store/messages.ts";
import { DEFAULT_TYPING_TIMEOUT_MS, type ReadStateView } from "./model.ts";

/** Typing and read positions: access is checked here, the change runs in the channel's loop. */
export class PresenceService {
  constructor(private readonly deps: ServiceDeps) {}

  /** Returns who types now. */
  async setTyping(callerId: string, channelId: string, typing: boolean, timeoutMs = DEFAULT_TYPING_TIMEOUT_MS): Promise<string[]> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    if (!access.member?.can_write) throw forbidden("only members who may write can type in this channel");
    return this.deps.registry.run(channelId, "presence.typing", { callerId, typing, timeoutMs });
  }

  /** Marks everything up to `messageId` read for the caller. */
  async markRead(callerId: string, channelId: string, messageId: string): Promise<ReadStateView> {
    const access = await readableChannel(this.deps.sql, callerId, channelId);
    if (!access.member) throw forbidden("only members of this channel keep a read position");
    const message = await findMessage(this.deps.sql, channelId, messageId);
    if (!message) throw notFound("message");
    if (!message.matrix_event_id) throw new AppError(409, "MESSAGE_NOT_DELIVERED", "the message is not in Matrix yet; mark an earlier one read");
    return this.deps.registry.run(channelId, "presence.read", { callerId, messageId });
  }
}
