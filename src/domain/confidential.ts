import { AppError } from "../errors.ts";

/**
 * Confidential (is_encrypted) channels: the room has m.room.encryption, and the service, which
 * holds no end-to-end keys, keeps no message content for them. Sends through the API would reach
 * Matrix in plaintext, so they are refused rather than silently weakening the room.
 */
export const channelEncrypted = () =>
  new AppError(
    409,
    "CHANNEL_ENCRYPTED",
    "this channel is end-to-end encrypted: the service cannot encrypt, so send from a Matrix client (Element) instead",
  );

export function refuseIfEncrypted(channel: { is_encrypted: boolean } | null | undefined): void {
  if (channel?.is_encrypted) throw channelEncrypted();
}

/** Megolm-encrypted events: opaque to the service, indexed as messages without content. */
export const ENCRYPTED_EVENT_TYPE = "m.room.encrypted";
export const ENCRYPTED_CONTENT_TYPE = "encrypted";
