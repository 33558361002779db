/** Close code for a socket whose token expired: reconnect with a fresh token (and since_seq). */
export const TOKEN_EXPIRED_CLOSE_CODE = 4401;

/** setTimeout's longest delay; a token valid for longer is checked again then. */
const MAX_TIMER_MS = 2 ** 31 - 1;

const timers = new WeakMap<object, ReturnType<typeof setTimeout>>();

/**
 * A socket lives no longer than the token that opened it, as a request would be refused once
 * the token expired: at that moment it is closed with TOKEN_EXPIRED_CLOSE_CODE.
 */
export function closeWhenTokenExpires(socket: { close(code?: number, reason?: string): void; readonly readyState: number }, expiresAt: number | undefined) {
  if (expiresAt === undefined) return;
  const left = expiresAt - Date.now();
  const timer = setTimeout(
    () => {
      timers.delete(socket);
      if (left > MAX_TIMER_MS) closeWhenTokenExpires(socket, expiresAt);
      else if (socket.readyState === 1) socket.close(TOKEN_EXPIRED_CLOSE_CODE, "token expired");
    },
    Math.max(0, Math.min(left, MAX_TIMER_MS)),
  );
  (timer as { unref?: () => void }).unref?.();
  timers.set(socket, timer);
}

export function forgetTokenExpiry(socket: object) {
  clearTimeout(timers.get(socket));
  timers.delete(socket);
}
