/** Close code for a client that sends frames faster than WS_MAX_FRAMES_PER_SEC. */
export const WS_FLOOD_CLOSE_CODE = 4429;

/**
 * Counts client frames per socket in one-second windows (per process: a socket lives on one
 * instance). Keyed by the underlying Bun socket, which outlives Elysia's per-message wrapper.
 */
export const FrameFlood = {
  windows: new WeakMap<object, { start: number; count: number }>(),
  exceeded(socket: object, maxPerSecond: number): boolean {
    if (maxPerSecond <= 0) return false;
    const now = Date.now();
    const w = this.windows.get(socket);
    if (!w || now - w.start >= 1000) {
      this.windows.set(socket, { start: now, count: 1 });
      return false;
    }
    w.count += 1;
    return w.count > maxPerSecond;
  },
};
