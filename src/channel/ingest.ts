import type { MatrixEvent } from "../matrix/port.ts";
import { fromMatrixUserId } from "../domain/ids.ts";
import { ENCRYPTED_EVENT_TYPE } from "../domain/confidential.ts";
import { consumeInboxEvent, consumeInboxEventsTogether } from "../store/inbox.ts";
import { findMessageByEvent } from "../store/messages.ts";
import { announceMessage } from "./announce.ts";
import type { ChannelContext } from "./context.ts";
import { handlerFor, type HandlerTable, type IngestResult } from "./handlers.ts";
import type { Outbox } from "./outbox.ts";

const isMessage = (event: MatrixEvent) => event.type === "m.room.message" || event.type === ENCRYPTED_EVENT_TYPE;

/**
 * Indexes a room's events in timeline order: the one switch over Matrix events. Each goes to
 * the handler of its kind (features/index.ts), whose result this loop acts on; this loop
 * alone consumes the inbox rows, in the handler's transaction. Stops at the first event that
 * fails; the ones before it are indexed, the rest stay in the inbox.
 */
/** What the inbox read said of the events: those the index did not hold then (store/inbox.ts). */
export interface InboxKnowledge {
  unindexed: ReadonlySet<string>;
}

export async function ingestAll(
  ctx: ChannelContext,
  handlers: HandlerTable,
  outbox: Outbox,
  setSeq: (seq: number) => void,
  events: MatrixEvent[],
  known: InboxKnowledge,
  /** Takes a write the loop does not wait for; its caller must await it (an ignored one would hide a failure). */
  offLoop: (work: Promise<void>) => void,
): Promise<void> {
  let next = 0;
  while (next < events.length) {
    // Echoes of our own sends, known from memory: their inbox rows go in one statement.
    const echoes: string[] = [];
    while (next < events.length && events[next]!.type === "m.room.message" && outbox.takeOwnEcho(events[next]!.event_id)) {
      echoes.push(events[next++]!.event_id);
    }
    if (echoes.length > 0) {
      // Nothing the channel does next depends on these rows, so the loop does not wait for
      // their delete (the caller does). A row the delete missed is read again, found in the
      // index by its event id, and consumed then.
      offLoop(consumeInboxEventsTogether(ctx.deps.sql, echoes));
      continue;
    }
    const event = events[next++]!;
    const result = isMessage(event) && (await isOwnSend(ctx, outbox, event, known)) ? ({ kind: "ignored" } as const) : await handle(ctx, handlers, event);
    await apply(ctx, setSeq, event, result);
  }
}

async function handle(ctx: ChannelContext, handlers: HandlerTable, event: MatrixEvent): Promise<IngestResult> {
  const handler = handlerFor(handlers, event);
  return handler ? handler.handle(ctx, event) : { kind: "ignored" };
}

async function apply(ctx: ChannelContext, setSeq: (seq: number) => void, event: MatrixEvent, result: IngestResult): Promise<void> {
  const { sql } = ctx.deps;
  if (result.kind !== "ignored") ctx.deps.metrics?.eventIndexed(event.origin_server_ts);
  switch (result.kind) {
    case "ignored":
      await consumeInboxEvent(sql, event.event_id);
      return;
    case "indexed": {
      const written = await sql.begin(async (tx) => {
        const value = await result.write(tx);
        await consumeInboxEvent(tx, event.event_id);
        return value;
      });
      await result.after?.(written);
      return;
    }
    case "message": {
      const seq = ctx.seq + 1;
      const row = await result.insert(seq, event.event_id);
      setSeq(seq);
      ctx.log.debug({ message_id: row.id, seq }, "indexed a message from matrix");
      await announceMessage(ctx, row, false, result.eventsQueued === true);
      return;
    }
  }
}

/**
 * Our own sends come back from the homeserver: matched by event id, never indexed twice.
 * Matrix may also hold a send whose confirmation we lost (the database failed after the
 * send): resending it with its txnId yields this very event id and marks the row sent, so the
 * echo is recognised instead of becoming a second message.
 */
async function isOwnSend(ctx: ChannelContext, outbox: Outbox, event: MatrixEvent, known: InboxKnowledge): Promise<boolean> {
  const { sql, matrix } = ctx.deps;
  if (outbox.takeOwnEcho(event.event_id)) return true;
  const foreign = fromMatrixUserId(event.sender, matrix.serverName).id.startsWith("matrix:");
  // A sender outside our namespace is never one of our sends, and only this loop indexes a
  // Matrix message (from its one inbox row): not in the index when the inbox was read, it is
  // not there now. No look-up, a round trip less before an Element message's frame.
  if (foreign && known.unindexed.has(event.event_id)) return false;
  if (await findMessageByEvent(sql, event.event_id)) return true;
  if (outbox.pending > 0 && !foreign) {
    await outbox.pump();
    if (await findMessageByEvent(sql, event.event_id)) return true;
    if (outbox.pending > 0) throw new Error("matrix is unavailable for pending sends; the echo waits in the inbox");
  }
  return false;
}
