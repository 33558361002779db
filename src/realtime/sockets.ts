import { mayRead, type ReadRule } from "../domain/read-rule.ts";

/** The close code of a socket whose caller lost the right to read the channel (kicked, left, can_read=false). */
export const READ_REVOKED_CLOSE_CODE = 4403;

/** What the registry needs of a Bun ServerWebSocket. */
export interface LiveSocket {
  close(code?: number, reason?: string): void;
}

/**
 * The open channel sockets by member id, so that a membership change made by the channel's
 * actor (src/features/members/commands.ts) can end the sockets of whoever lost the read right.
 */
export class SocketRegistry {
  /** channel -> caller -> socket -> the microDAOs the socket's token listed. */
  private readonly channels = new Map<string, Map<string, Map<LiveSocket, readonly string[]>>>();

  add(channelId: string, memberId: string, socket: LiveSocket, microdaos: readonly string[] = []): void {
    let members = this.channels.get(channelId);
    if (!members) this.channels.set(channelId, (members = new Map()));
    let sockets = members.get(memberId);
    if (!sockets) members.set(memberId, (sockets = new Map()));
    sockets.set(socket, microdaos);
  }

  remove(channelId: string, memberId: string, socket: LiveSocket): void {
    const members = this.channels.get(channelId);
    const sockets = members?.get(memberId);
    if (!sockets?.delete(socket) || sockets.size > 0) return;
    members!.delete(memberId);
    if (members!.size === 0) this.channels.delete(channelId);
  }

  /** Stops the member's sockets on the channel receiving (at once) and closes them; returns how many. */
  revoke(channelId: string, memberId: string, reason: string): number {
    const sockets = this.channels.get(channelId)?.get(memberId);
    if (!sockets) return 0;
    const ended = [...sockets.keys()];
    for (const socket of ended) {
      this.remove(channelId, memberId, socket);
      // Closing takes it out of the channel's fan-out at once (it only sends to open sockets).
      socket.close(READ_REVOKED_CLOSE_CODE, reason);
    }
    return ended.length;
  }

  /** Revokes, as above, every socket on the channel whose caller (with its token's microDAOs) may no longer read it. */
  revokeUnless(channelId: string, rule: ReadRule, reason: string): number {
    let ended = 0;
    for (const [memberId, sockets] of [...(this.channels.get(channelId) ?? [])]) {
      for (const [socket, microdaos] of [...sockets]) {
        if (mayRead(rule, memberId, microdaos)) continue;
        this.remove(channelId, memberId, socket);
        socket.close(READ_REVOKED_CLOSE_CODE, reason);
        ended++;
      }
    }
    return ended;
  }
}
