import type { Tx } from "../store/db.ts";
import type { MessageRow } from "../store/rows.ts";
import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import type { ChannelContext } from "./context.ts";

/**
 * What a handler did with a Matrix event; the ingest loop acts on it (as mautrix-go's
 * EventHandlingResult), and alone consumes the event's inbox row:
 * - `ignored`: nothing to index; the row is consumed on its own.
 * - `indexed`: `write` runs in a transaction that also consumes the row; `after` announces what
 *   it wrote, after the commit.
 * - `message`: a new message, inserted by one statement that also consumes the row, at the
 *   seq the loop hands over; the loop announces it (and publishes its message.created, unless
 *   `eventsQueued` says the insert queued its events itself).
 */
export type IngestResult =
  | { kind: "ignored" }
  | { kind: "indexed"; write: (tx: Tx) => Promise<unknown>; after?: (written: any) => unknown }
  | { kind: "message"; insert: (seq: number, consumingInboxEvent: string) => Promise<MessageRow>; eventsQueued?: boolean };

export const ignored = (): IngestResult => ({ kind: "ignored" });

export function indexed<T>(write: (tx: Tx) => Promise<T>, after?: (written: T) => unknown): IngestResult {
  return { kind: "indexed", write, after };
}

/**
 * The event kinds a feature handles. A kind is a Matrix event type, or `type|rel_type` for an
 * event that relates to another (an edit is `m.room.message|m.replace`), which then goes to
 * its own handler instead of the type's. `state` kinds are asked of /sync's room state too.
 */
export interface EventHandler {
  kinds: string[];
  state?: boolean;
  handle(ctx: ChannelContext, event: MatrixEvent): Promise<IngestResult>;
}

/** Typing and receipts: no event id, no inbox row; a lost one is superseded by the next. */
export interface EphemeralHandler {
  kinds: string[];
  handle(ctx: ChannelContext, event: EphemeralEvent): Promise<void>;
}

export interface HandlerTable {
  timeline: ReadonlyMap<string, EventHandler>;
  ephemeral: ReadonlyMap<string, EphemeralHandler>;
  /** What the /sync filter asks for and the inbox keeps, derived from the handlers. */
  types: { timeline: string[]; state: string[]; ephemeral: string[] };
}

/** One handler per kind: a second one for the same kind is an error at start-up (as in matrix-hookshot). */
export function handlerTable(timeline: EventHandler[], ephemeral: EphemeralHandler[]): HandlerTable {
  const byKind = <H extends { kinds: string[] }>(handlers: H[]) => {
    const map = new Map<string, H>();
    for (const handler of handlers) {
      for (const kind of handler.kinds) {
        if (map.has(kind)) throw new Error(`two Matrix event handlers for ${kind}`);
        map.set(kind, handler);
      }
    }
    return map;
  };
  const typeOf = (kind: string) => kind.split("|")[0]!;
  const unique = (kinds: string[]) => [...new Set(kinds.map(typeOf))];
  return {
    timeline: byKind(timeline),
    ephemeral: byKind(ephemeral),
    types: {
      timeline: unique(timeline.flatMap((h) => h.kinds)),
      state: unique(timeline.filter((h) => h.state).flatMap((h) => h.kinds)),
      ephemeral: unique(ephemeral.flatMap((h) => h.kinds)),
    },
  };
}

/** The handler for an event: its relation's kind if one is registered, else its type's. */
export function handlerFor(table: HandlerTable, event: MatrixEvent): EventHandler | undefined {
  const relType = (event.content["m.relates_to"] as { rel_type?: unknown } | undefined)?.rel_type;
  const byRelation = typeof relType === "string" ? table.timeline.get(`${event.type}|${relType}`) : undefined;
  return byRelation ?? table.timeline.get(event.type);
}
