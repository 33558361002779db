/**
 * A WebSocket client that queues every frame and lets a test await them in order, each with
 * a timeout. No sleeps: a frame that never comes fails the test with what did come.
 */
export class WsInbox {
  private readonly frames: string[] = [];
  private waiter: (() => void) | null = null;
  readonly closed: Promise<{ code: number; reason: string }>;
  readonly opened: Promise<void>;

  constructor(readonly ws: WebSocket) {
    ws.addEventListener("message", (e) => {
      this.frames.push(typeof e.data === "string" ? e.data : new TextDecoder().decode(e.data as ArrayBuffer));
      this.waiter?.();
    });
    this.opened = new Promise((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error("websocket failed to open")), { once: true });
    });
    this.closed = new Promise((resolve) =>
      ws.addEventListener("close", (e) => {
        resolve({ code: e.code, reason: e.reason });
        this.waiter?.();
      }),
    );
  }

  static async open(url: string, headers?: Record<string, string>): Promise<WsInbox> {
    const inbox = new WsInbox(new WebSocket(url, { headers } as never));
    await inbox.opened;
    return inbox;
  }

  /** The next raw frame. */
  async next(timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.frames.length === 0) {
      const left = deadline - Date.now();
      if (left <= 0 || this.ws.readyState === WebSocket.CLOSED) {
        throw new Error(`no WebSocket frame within ${timeoutMs} ms (socket state ${this.ws.readyState})`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(timer);
          this.waiter = null;
          resolve();
        };
      });
    }
    return this.frames.shift()!;
  }

  async nextJson<T = any>(timeoutMs = 5000): Promise<T> {
    return JSON.parse(await this.next(timeoutMs)) as T;
  }

  /** The next frame of `type`, skipping others (membership frames, say). */
  async nextOfType<T = any>(type: string, timeoutMs = 10000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const frame = await this.nextJson(Math.max(1, deadline - Date.now()));
      if (frame.type === type) return frame as T;
    }
  }

  /** Frames received and not yet consumed. */
  get pending(): readonly string[] {
    return this.frames;
  }

  close() {
    this.ws.close();
  }
}
