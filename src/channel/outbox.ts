import { backoffDelay, type BackoffPolicy } from "../backoff.ts";
import { Subjects } from "../events/model.ts";
import { MatrixError, type SentEvents } from "../matrix/port.ts";
import { senderTypeOf } from "../domain/ids.ts";
import { refuseIfEncrypted } from "../domain/confidential.ts";
import { indexedPreview } from "../domain/preview.ts";
import { AppError } from "../errors.ts";
import type { MessageRow } from "../store/rows.ts";
import {
  findMessage,
  findMessageByEvent,
  findMessages,
  insertPendingMessages,
  latestInThread,
  markAllSentTogether,
  markFailed,
  pendingMessages,
  type NewMessage,
} from "../store/messages.ts";
import { toMessageView } from "../store/views.ts";
import { announceMessage, messageCreatedEvent } from "./announce.ts";
import type { ChannelContext } from "./context.ts";
import { contentTypeOf, mediaFromContent, voiceFromContent } from "./media.ts";
import { sendTargets } from "./targets.ts";
import { agentMentionedEvents, sendMentions, withMentions } from "./mentions.ts";
import { linkPreviewOf } from "./link-previews.ts";
import { sendInIndex } from "./sends-in-index.ts";
import { NO_PREVIEWS_KEY } from "../domain/link-previews.ts";

export interface SendCommand {
  senderId: string;
  text: string;
  msgtype: string;
  formattedBody: string | null;
  replyTo: string | null;
  /** The message id (and Matrix transaction id); the caller may choose it to find the row later. */
  id?: string;
  /** The id was chosen for this very attempt, never sent before: no row can have it, so none is looked up. */
  newId?: boolean;
  /** The root message of the thread this message is posted into. */
  threadId?: string | null;
  /** More Matrix content (a media message's url and info, say). */
  extraContent?: Record<string, unknown>;
  /** A public channel's first write joins the sender as a member. */
  joinFirst: boolean;
  /** Member ids the sender mentions besides those the text names (`@agent:sofia`). */
  mentions?: string[] | null;
  /** false: no link preview (and Matrix gets an empty MSC4095 list, so clients show none either). */
  linkPreview?: boolean;
}

export type DeliveryWaiter = { resolve: (row: MessageRow) => void; reject: (err: unknown) => void; accepted?: (row: MessageRow) => void };
export type SendRequest = { cmd: SendCommand; waiter: DeliveryWaiter };

/** What the outbox needs of its channel besides the context: the seq it advances, and the mailbox for retries. */
export interface OutboxHost {
  readonly ctx: ChannelContext;
  setSeq(seq: number): void;
  /** Queues a job in the channel's mailbox (a retry of the pending sends), unless it is closing. */
  schedule(run: () => Promise<void>): void;
}

/** Pending sends are tried again after 0.5 s, doubling to 30 s, jittered so channels do not retry in step. */
const OUTBOX_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000 };
/**
 * The most sends written in one batch. A batch is one INSERT, one Matrix call on the local
 * backend, one UPDATE; a bigger one would only delay the first sender's answer.
 */
export const SEND_BATCH_MAX = 64;
/** Event ids of our own sends whose echo from the homeserver has not come back yet. */
const OWN_ECHOES_MAX = 10_000;

export { CONTENT_TYPES } from "./media.ts";

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sortKeys(v)]));
  }
  return value;
}

/** A refusal that retrying cannot change (any 4xx but 429); anything else is worth retrying. */
function isPermanent(err: unknown): boolean {
  if (err instanceof AppError) return err.status < 500;
  if (!(err instanceof MatrixError)) return false;
  return err.httpStatus >= 400 && err.httpStatus < 500 && err.httpStatus !== 429 && err.errcode !== "M_LIMIT_EXCEEDED";
}

export function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * A channel's sends: written durable (pending) in one statement per batch, then delivered to
 * Matrix in seq order, each with its message id as txnId, retried with backoff while the
 * homeserver is away. Only the channel's loop calls it.
 */
export class Outbox {
  /** Pending send ids, in seq order. */
  private readonly ids: string[] = [];
  /** The outbox's rows as this channel wrote or loaded them: only this channel changes a pending row. */
  private readonly rows = new Map<string, MessageRow>();
  /** Who waits for a send's outcome: usually one caller; a retry with the same id joins it. */
  private readonly waiters = new Map<string, DeliveryWaiter[]>();
  /** Lets the echo of our own send be recognised without a look-up; a miss falls back to the index. */
  private readonly ownEchoes = new Set<string>();
  private readonly announcedPending = new Set<string>();
  /** Pending sends whose last attempt may have reached Matrix. */
  private readonly uncertain = new Set<string>();
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private retryAttempt = 0;

  constructor(private readonly host: OutboxHost) {}

  private get ctx(): ChannelContext {
    return this.host.ctx;
  }

  get pending(): number {
    return this.ids.length;
  }

  /** Sends accepted before a crash (or while Matrix was down) go first, with their original txnId. */
  async load(): Promise<void> {
    for (const row of await pendingMessages(this.ctx.deps.sql, this.ctx.channelId)) {
      this.ids.push(row.id);
      this.rows.set(row.id, row);
      // Subscribers (and resuming clients, from the index) know it as pending already; and
      // a crash may have come after Matrix took it.
      this.announcedPending.add(row.id);
      this.uncertain.add(row.id);
    }
    if (this.ids.length > 0) await this.pump();
  }

  /** Takes (forgets) an event id if it is the echo of one of our own sends. */
  takeOwnEcho(eventId: string): boolean {
    return this.ownEchoes.delete(eventId);
  }

  /** Stops retrying; whoever still waits for Matrix's confirmation is told the send stays pending. */
  stopRetrying(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  abandonWaiters(): void {
    for (const [id, waiters] of this.waiters) {
      for (const waiter of waiters) {
        waiter.reject(new AppError(503, "SHUTTING_DOWN", "the service stopped before Matrix confirmed the message; it stays pending", { "Retry-After": "5" }));
      }
      this.waiters.delete(id);
    }
  }

  /**
   * Writes a batch of sends as pending rows in one statement, then delivers them. Each send is
   * checked on its own: one with a bad reply_to is refused without holding up the others.
   */
  async runSends(requests: SendRequest[]): Promise<void> {
    const { sql } = this.ctx.deps;
    // An id that may have been sent before (an Idempotency-Key's, or an op asked again of a new owner) is looked for first.
    const chosenIds = requests.flatMap((r) => (r.cmd.id && !r.cmd.newId ? [r.cmd.id] : []));
    const existing = await findMessages(sql, this.ctx.channelId, chosenIds);
    const fresh: Array<{ message: NewMessage; waiter: DeliveryWaiter }> = [];
    const sameIdAgain: SendRequest[] = [];
    for (const request of requests) {
      const { cmd, waiter } = request;
      // The same id again (a retry whose first attempt's answer was lost): that message, not a new one.
      const found = cmd.id ? existing.get(cmd.id) : undefined;
      if (found) {
        this.rejoin(found, waiter);
        continue;
      }
      if (cmd.id && fresh.some((f) => f.message.id === cmd.id)) {
        sameIdAgain.push(request);
        continue;
      }
      try {
        fresh.push({ message: await this.prepareSend(cmd, this.ctx.seq + fresh.length + 1), waiter });
      } catch (err) {
        waiter.reject(err);
      }
    }
    if (fresh.length === 0) return;
    if (this.ids.length === 0) {
      const sent = await this.sendInIndex(fresh);
      if (sent) {
        for (const { cmd, waiter } of sameIdAgain) this.rejoin(sent.find((row) => row.id === cmd.id)!, waiter);
        return;
      }
    }
    // Durable first: the rows exist (pending, with what to send) before Matrix is asked.
    const inserted = await insertPendingMessages(sql, fresh.map((f) => f.message));
    this.ctx.deps.metrics?.batchCommitted(inserted.length);
    const wasIdle = this.ids.length === 0;
    this.host.setSeq(this.ctx.seq + inserted.length);
    inserted.forEach((row, i) => {
      fresh[i]!.waiter.accepted?.(row);
      this.addWaiter(row.id, fresh[i]!.waiter);
      this.ids.push(row.id);
      this.rows.set(row.id, row);
    });
    for (const { cmd, waiter } of sameIdAgain) this.rejoin(inserted.find((row) => row.id === cmd.id)!, waiter);
    // Behind an earlier pending send, these wait their turn (Matrix order follows seq order).
    if (wasIdle) await this.pump();
    else for (const row of inserted) await this.announcePending(row);
  }

  /**
   * With the homeserver in the index's own database and nothing pending before them, the rows
   * are written as sent with their events in one statement (sends-in-index.ts). Null when the
   * batch takes the usual path: nothing of it was written then.
   */
  private async sendInIndex(fresh: Array<{ message: NewMessage; waiter: DeliveryWaiter }>): Promise<MessageRow[] | null> {
    const rows = await sendInIndex(this.ctx, fresh.map((f) => f.message));
    if (!rows) return null;
    this.ctx.deps.metrics?.batchCommitted(rows.length);
    this.host.setSeq(this.ctx.seq + rows.length);
    const { knownEchoes } = this.ctx.deps;
    rows.forEach((row, i) => {
      fresh[i]!.waiter.accepted?.(row);
      if (knownEchoes) knownEchoes.add(row.matrix_event_id!);
      else this.rememberOwnEcho(row.matrix_event_id!);
    });
    await Promise.all(rows.map((row) => announceMessage(this.ctx, row, false, true)));
    rows.forEach((row, i) => fresh[i]!.waiter.resolve(row));
    return rows;
  }

  /** A send that is already in the index: its caller gets that message's outcome. */
  private rejoin(row: MessageRow, waiter: DeliveryWaiter) {
    waiter.accepted?.(row);
    if (row.delivery_state === "sent") waiter.resolve(row);
    else if (row.delivery_state === "failed") waiter.reject(new AppError(502, "MATRIX_REFUSED", "Matrix refused the message"));
    else this.addWaiter(row.id, waiter);
  }

  private addWaiter(id: string, waiter: DeliveryWaiter) {
    const waiters = this.waiters.get(id);
    if (waiters) waiters.push(waiter);
    else this.waiters.set(id, [waiter]);
  }

  /**
   * Checks one send and builds its pending row (with the Matrix content to deliver). Whatever
   * can refuse it is checked before a first write joins the sender: a refused send writes nothing.
   */
  private async prepareSend(cmd: SendCommand, seq: number): Promise<NewMessage> {
    const { ctx } = this;
    const { sql } = ctx.deps;
    refuseIfEncrypted(ctx.channel);
    const targets = await sendTargets(sql, ctx.channelId, cmd.replyTo, cmd.threadId);
    const replyEventId = targets.replyTo?.matrix_event_id ?? null;
    const mentions = await sendMentions(ctx, cmd.senderId, cmd.text, cmd.mentions);
    const content: Record<string, unknown> = { ...cmd.extraContent, msgtype: cmd.msgtype, body: cmd.text };
    if (cmd.formattedBody) {
      content.format = "org.matrix.custom.html";
      content.formatted_body = cmd.formattedBody;
    }
    withMentions(content, cmd.text, cmd.formattedBody, mentions, ctx.deps.matrix.serverName);
    if (cmd.linkPreview === false) content[NO_PREVIEWS_KEY] = [];
    const root = targets.threadRoot;
    if (root) {
      const latest = await latestInThread(sql, root.id);
      content["m.relates_to"] = {
        rel_type: "m.thread",
        event_id: root.matrix_event_id,
        // Clients without threads show it as a reply: to the message named, or to the thread's latest.
        is_falling_back: !replyEventId,
        "m.in_reply_to": { event_id: replyEventId ?? latest?.matrix_event_id ?? root.matrix_event_id },
      };
    } else if (replyEventId) {
      content["m.relates_to"] = { "m.in_reply_to": { event_id: replyEventId } };
    }
    if (cmd.joinFirst) await ctx.joinPublic(cmd.senderId);
    return {
      id: cmd.id ?? Bun.randomUUIDv7(),
      channel_id: ctx.channelId,
      seq,
      matrix_event_id: null,
      matrix_type: "m.room.message",
      sender_id: cmd.senderId,
      sender_type: senderTypeOf(cmd.senderId),
      sender_matrix_id: ctx.matrixId(cmd.senderId),
      sender_display_name: null,
      content_preview: indexedPreview(ctx.channel, cmd.text),
      content_type: contentTypeOf(cmd.msgtype, content),
      msgtype: cmd.msgtype,
      thread_id: root?.id ?? null,
      reply_to: cmd.replyTo,
      delivery_state: "pending",
      outbox_content: content,
      created_at: null,
      media: mediaFromContent(content),
      voice: voiceFromContent(content),
      mentions: mentions.map((m) => m.memberId),
      preview: linkPreviewOf(ctx, cmd.msgtype, cmd.text, content),
    };
  }

  /**
   * Delivers pending sends to Matrix in seq order, each with its message id as txnId, so a
   * retry can never create a second event. A transient failure (unreachable, 5xx, 429 past the
   * retry budget) keeps the row pending and retries later with capped, jittered backoff; a refusal marks
   * it failed with its reason.
   */
  async pump(): Promise<void> {
    try {
      await this.deliverAll();
    } catch (err) {
      // The index failed (a database restart, say) with sends still pending: they are tried
      // again on their own, not only when the next send or echo comes along.
      if (this.ids.length > 0 && !this.retryTimer) this.retryLater(err);
      throw err;
    }
  }

  private async deliverAll(): Promise<void> {
    this.stopRetrying();
    while (this.ids.length > 0) {
      const head = this.ids.slice(0, SEND_BATCH_MAX);
      const rows = await this.rowsOf(head);
      // Gone from the index since it was queued (its channel deleted, say): nothing to deliver.
      const gone = new Set(head.filter((id) => rows.get(id)?.delivery_state !== "pending"));
      if (gone.size > 0) {
        const remaining = this.ids.filter((id) => !gone.has(id));
        this.ids.splice(0, this.ids.length, ...remaining);
        for (const id of gone) this.rows.delete(id);
        continue;
      }
      // A send whose last attempt may have reached Matrix goes alone, after a look in the room.
      const firstUncertain = head.findIndex((id) => this.uncertain.has(id));
      const batch = head.slice(0, firstUncertain === 0 ? 1 : firstUncertain === -1 ? head.length : firstUncertain).map((id) => rows.get(id)!);
      const result = await this.deliver(batch);
      const delivered = batch.slice(0, result.eventIds.length);
      if (delivered.length > 0) await this.confirmSent(delivered, result.eventIds);
      if (result.error === undefined) continue;
      const row = batch[delivered.length]!;
      const err = result.error;
      if (isPermanent(err)) {
        await this.fail(row, err);
        continue;
      }
      // Unreachable or overloaded: everything from here on stays pending, in order. Whether
      // Matrix took this one is unknown (the ones after it were not tried, or are deduplicated
      // by their txnId in a homeserver that keeps txnIds, as the local backend does).
      this.uncertain.add(row.id);
      for (const pendingId of this.ids) {
        const pendingRow = rows.get(pendingId) ?? (await findMessage(this.ctx.deps.sql, this.ctx.channelId, pendingId));
        if (pendingRow) await this.announcePending(pendingRow);
      }
      this.ctx.log.warn({ message_id: row.id, pending: this.ids.length, err: describe(err) }, "matrix unavailable; sends stay pending");
      this.retryLater(err);
      return;
    }
  }

  /** Matrix refused the outbox's head for good: it is marked failed with its reason, and the rest go on. */
  private async fail(row: MessageRow, err: unknown) {
    const { ctx } = this;
    const id = row.id;
    const reason = err instanceof MatrixError ? `${err.errcode}: ${err.message}` : String(err);
    const failed = await markFailed(ctx.deps.sql, row.id, reason.slice(0, 500));
    this.ids.shift();
    this.rows.delete(id);
    this.announcedPending.delete(id);
    ctx.log.warn({ message_id: id, errcode: (err as MatrixError).errcode }, "matrix refused a message; marked failed");
    await ctx.announce({ type: "message.failed", seq: Number(failed.seq), message: toMessageView(failed) }, Subjects.messageFailed, {
      event_id: `message.failed:${id}`,
      channel_id: ctx.channelId,
      message_id: id,
      seq: Number(failed.seq),
      sender_id: failed.sender_id,
      reason: failed.failure_reason ?? reason,
      failed_at: new Date().toISOString(),
    });
    this.settle(id, (w) => w.reject(new AppError(502, "MATRIX_REFUSED", `Matrix refused the message (${(err as MatrixError).errcode ?? "M_UNKNOWN"})`)));
  }

  /** Brings the outbox back into the loop after a capped, jittered backoff. */
  private retryLater(err: unknown) {
    const delay = backoffDelay(this.retryAttempt++, OUTBOX_BACKOFF);
    this.ctx.deps.metrics?.outboxRetried();
    this.ctx.log.info({ pending: this.ids.length, retry_in_ms: delay, err: describe(err) }, "pending sends will be tried again");
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.host.schedule(() => this.pump());
    }, delay);
  }

  private async rowsOf(ids: string[]): Promise<Map<string, MessageRow>> {
    const missing = ids.filter((id) => !this.rows.has(id));
    if (missing.length > 0) for (const [id, row] of await findMessages(this.ctx.deps.sql, this.ctx.channelId, missing)) this.rows.set(id, row);
    return new Map(ids.flatMap((id) => (this.rows.has(id) ? [[id, this.rows.get(id)!] as const] : [])));
  }

  /** Hands a batch of pending sends to Matrix, each with its message id as txnId. */
  private async deliver(batch: MessageRow[]): Promise<SentEvents> {
    const { matrix, stillOwner } = this.ctx.deps;
    try {
      // Matrix cannot be fenced: an instance that lost the channel does not call it (the new owner will).
      if (stillOwner && !stillOwner(this.ctx.channelId)) throw new Error("this instance no longer owns the channel");
      for (const sender of new Set(batch.map((row) => row.sender_matrix_id))) await matrix.ensureUser(sender);
      // After an attempt whose outcome is unknown (the homeserver went away mid-request, or this
      // process died), the event may exist already, and a homeserver restart forgets txnIds:
      // look for it before sending again.
      const [first] = batch;
      if (first && this.uncertain.has(first.id)) {
        const already = await this.findDelivered(first).catch((err) => (isPermanent(err) ? null : Promise.reject(err)));
        if (already) return { eventIds: [already.eventId] };
      }
      return await matrix.sendEvents(
        this.ctx.room,
        batch.map((row) => ({ asUser: row.sender_matrix_id, type: "m.room.message", content: row.outbox_content ?? {}, txnId: row.id })),
      );
    } catch (error) {
      return { eventIds: [], error };
    }
  }

  /** Matrix took these (the outbox's head, in order): index them as sent and tell everyone. */
  private async confirmSent(rows: MessageRow[], eventIds: string[]) {
    // Until the index says sent, a retry must look in the room first.
    for (const row of rows) this.uncertain.add(row.id);
    // The events are queued in the statement that says sent: both are durable, or neither.
    const { events } = this.ctx.deps;
    const created = rows.flatMap((row, i) => {
      const sentRow: MessageRow = { ...row, delivery_state: "sent", matrix_event_id: eventIds[i]!, outbox_content: null, failure_reason: null };
      return [{ subject: Subjects.messageCreated, payload: messageCreatedEvent(this.ctx, sentRow) }, ...agentMentionedEvents(this.ctx, sentRow)];
    });
    const sent = await markAllSentTogether(this.ctx.deps.sql, rows.map((row, i) => ({ id: row.id, eventId: eventIds[i]! })), await events.outboxRows(created));
    events.queued(created);
    this.ids.splice(0, rows.length);
    for (const row of rows) this.rows.delete(row.id);
    this.retryAttempt = 0;
    for (const row of sent) {
      this.uncertain.delete(row.id);
      this.rememberOwnEcho(row.matrix_event_id!);
    }
    // Broadcast in seq order at once; the events bus writes the batch's events together.
    await Promise.all(sent.map((row) => announceMessage(this.ctx, row, this.announcedPending.delete(row.id), true)));
    for (const row of sent) this.settle(row.id, (w) => w.resolve(row));
  }

  private rememberOwnEcho(eventId: string) {
    this.ownEchoes.add(eventId);
    // An echo that never comes (a crash, a limited sync) must not grow the set for ever.
    if (this.ownEchoes.size > OWN_ECHOES_MAX) this.ownEchoes.delete(this.ownEchoes.values().next().value!);
  }

  /**
   * The event a pending send already became, if any: the newest events of the room from the
   * same sender with the same content, sent since the row was written and not indexed yet.
   */
  private async findDelivered(row: MessageRow): Promise<{ eventId: string } | null> {
    const { sql, matrix } = this.ctx.deps;
    const page = await matrix.roomMessages(this.ctx.room, { dir: "b", limit: 100 });
    const wanted = JSON.stringify(sortKeys(row.outbox_content ?? {}));
    for (const event of page.events) {
      if (event.origin_server_ts < row.created_at.getTime() - 5000) break;
      if (event.type !== "m.room.message" || event.sender !== row.sender_matrix_id) continue;
      if (JSON.stringify(sortKeys(event.content)) !== wanted) continue;
      if (await findMessageByEvent(sql, event.event_id)) continue;
      this.ctx.log.info({ message_id: row.id }, "a pending send was already in Matrix; not sending it twice");
      return { eventId: event.event_id };
    }
    return null;
  }

  /** Tells subscribers, once, that a send is accepted but not yet in Matrix, in its seq place. */
  private async announcePending(row: MessageRow) {
    if (this.announcedPending.has(row.id)) return;
    this.announcedPending.add(row.id);
    const view = toMessageView(row);
    void this.ctx.announce({ type: "message.created", seq: view.seq, message: view });
  }

  private settle(id: string, fn: (w: DeliveryWaiter) => void) {
    const waiters = this.waiters.get(id);
    if (!waiters) return;
    this.waiters.delete(id);
    for (const waiter of waiters) fn(waiter);
  }
}
