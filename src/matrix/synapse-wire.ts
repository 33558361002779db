import type { MatrixEvent } from "./port.ts";

/** What the Synapse client reads off the wire: parsed loosely, then turned into the port's shapes. */
export type Json = Record<string, any>;

export function toEvent(e: Json, roomId: string): MatrixEvent {
  const event: MatrixEvent = {
    event_id: e.event_id,
    room_id: e.room_id ?? roomId,
    sender: e.sender,
    type: e.type,
    content: (e.content ?? {}) as Record<string, unknown>,
    origin_server_ts: Number(e.origin_server_ts ?? Date.now()),
  };
  if (typeof e.state_key === "string") event.state_key = e.state_key;
  const redacts = e.redacts ?? e.content?.redacts;
  if (typeof redacts === "string") event.redacts = redacts;
  return event;
}

export function localpartOf(userId: string): string {
  return userId.slice(1, userId.indexOf(":"));
}

/** What a 429 asks us to wait: retry_after_ms in the body, else the Retry-After header (seconds), else 1 s. */
export function retryAfterMs(body: Json, headers: Headers): number {
  const fromBody = Number(body.retry_after_ms);
  if (Number.isFinite(fromBody) && fromBody >= 0) return fromBody;
  const header = headers.get("retry-after");
  const fromHeader = header === null ? NaN : Number(header);
  return Number.isFinite(fromHeader) && fromHeader >= 0 ? fromHeader * 1000 : 1000;
}

export function parseJson(text: string): Json {
  try {
    const v = JSON.parse(text);
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

export function redactPath(path: string): string {
  return path.replace(/\/send\/.*$/, "/send/…");
}

export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
  });
}
