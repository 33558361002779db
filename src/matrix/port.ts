/**
 * The Matrix port: what the service needs from a homeserver. The local backend implements it
 * in the service's own database; the Synapse client implements it over the client-server API.
 * One contract suite (test/contract/matrix.test.ts) runs against every adapter.
 */
import type { Visibility } from "../domain/rights.ts";
import type { MatrixEvent } from "../domain/event-types.ts";
import type { Fragment, Sql } from "../store/db.ts";

export type { MatrixEvent, Visibility };

export interface CreateRoomRequest {
  /** Matrix id of the creator; it joins with power level 100. */
  creator: string;
  aliasLocalpart: string;
  name: string;
  topic: string | null;
  visibility: Visibility;
  isEncrypted: boolean;
  isDirect: boolean;
  /** `creation_content.type`: `m.space` makes a space room. */
  roomType?: string | null;
}

/** One current state event of a type, with its state key. */
export interface StateEntry {
  stateKey: string;
  sender: string;
  content: Record<string, unknown>;
}

/** A room's ephemeral event (m.typing, m.receipt): no event id, never stored in the inbox. */
export interface EphemeralEvent {
  room_id: string;
  type: string;
  content: Record<string, unknown>;
}

export interface SyncBatch {
  nextBatch: string;
  /** Timeline events of every room the service sees, oldest first. */
  events: MatrixEvent[];
  /** Ephemeral events of the batch, handed to the actors after its timeline is indexed. */
  ephemeral?: EphemeralEvent[];
}

export interface UploadedMedia {
  /** `mxc://server/mediaId` */
  contentUri: string;
}

export interface DownloadedMedia {
  body: ReadableStream<Uint8Array>;
  contentType: string;
  /** Bytes, when the homeserver says. */
  size: number | null;
}

export interface RoomMessagesRequest {
  /** A token from a previous page's `end`; null starts at the newest event (dir b) or the oldest (dir f). */
  from?: string | null;
  /** b: newest first, going back in time; f: oldest first. */
  dir: "b" | "f";
  limit: number;
}

export interface RoomMessagesPage {
  /** Timeline events in `dir` order; redacted events keep their id and type with empty content. */
  events: MatrixEvent[];
  /** Where the next page starts; null once the timeline has no more events that way. */
  end: string | null;
}

/** TURN REST credentials (GET /voip/turnServer): the username is `<expiry unix seconds>:<user id>`. */
export interface TurnServer {
  username: string;
  password: string;
  uris: string[];
  /** Seconds the credentials are valid. */
  ttl: number;
}

export interface OutgoingEvent {
  asUser: string;
  type: string;
  content: Record<string, unknown>;
  txnId: string;
}

export interface SentEvents {
  /** The event ids of the first `eventIds.length` events, in order. */
  eventIds: string[];
  /** Why the event at index `eventIds.length` was not sent; absent when all were. */
  error?: unknown;
}

/** SQLSTATE of a send statement that aborted because its batch was not plain (migration 024). */
export const NOT_PLAIN_SQLSTATE = "DA002";

export function isNotPlainSend(err: unknown): boolean {
  return typeof err === "object" && err !== null && (err as { code?: string }).code === NOT_PLAIN_SQLSTATE;
}

/**
 * What only a homeserver kept in the index's own database offers (the local backend): a plain
 * batch of sends (new txnIds, senders joined, no reaction) written by CTEs of the index's own
 * statement, so a message's index row and its event commit together, in one round trip. Such
 * a statement aborts whole, with NOT_PLAIN_SQLSTATE, when a rule fails. A real homeserver has
 * no such thing; the service then writes the row pending first and sends after.
 */
export interface SendsInIndexStatement {
  /** False once the backend is closed: sends then take the usual path. */
  readonly open: boolean;
  newEventId(): string;
  /** The CTEs (for a `with` list) that write these batches' events with the ids given. */
  ctes(sql: Sql, batches: Array<{ roomId: string; events: OutgoingEvent[]; eventIds: string[] }>): Fragment;
  /** After such a statement committed: wakes the readers of /sync. */
  committed(): void;
}

/** sendEvents for a homeserver that takes one event per request. */
export async function sendEventsInTurn(
  send: MatrixBackend["sendEvent"],
  roomId: string,
  events: OutgoingEvent[],
): Promise<SentEvents> {
  const eventIds: string[] = [];
  for (const event of events) {
    try {
      eventIds.push((await send(roomId, event.asUser, event.type, event.content, event.txnId)).eventId);
    } catch (error) {
      return { eventIds, error };
    }
  }
  return { eventIds };
}

export interface MatrixBackend {
  readonly kind: "local" | "synapse";
  readonly serverName: string;
  /** Registers a virtual user if it does not exist yet (idempotent). */
  ensureUser(userId: string, displayName?: string | null): Promise<void>;
  /**
   * Creates the room with its alias. Idempotent for the same creator: when the alias already
   * names a room made by `req.creator` (a creation whose answer was lost), that room is the
   * answer. An alias taken by anyone else is M_ROOM_IN_USE.
   */
  createRoom(req: CreateRoomRequest): Promise<{ roomId: string; alias: string }>;
  /** The room an alias names, or null. */
  resolveAlias(alias: string): Promise<string | null>;
  sendState(roomId: string, asUser: string, type: string, stateKey: string, content: Record<string, unknown>): Promise<{ eventId: string }>;
  invite(roomId: string, asUser: string, target: string): Promise<void>;
  join(roomId: string, userId: string): Promise<void>;
  /** Removes `target` from the room as `asUser`; refused unless asUser's power allows it. */
  kick(roomId: string, asUser: string, target: string, reason?: string): Promise<void>;
  /** `userId` leaves the room (idempotent: leaving a room one is not in is done). */
  leave(roomId: string, userId: string): Promise<void>;
  /** The content of a current state event, or null when the room has none of that type and key. */
  getState(roomId: string, type: string, stateKey: string, asUser?: string): Promise<Record<string, unknown> | null>;
  /** Every current state event of `type` (any state key; emptied ones too, with content `{}`), read by `asUser` (default: the sync user). */
  getStateEvents(roomId: string, type: string, asUser?: string): Promise<StateEntry[]>;
  /** Idempotent per txnId: the same txnId always yields the same event. */
  sendEvent(roomId: string, asUser: string, type: string, content: Record<string, unknown>, txnId: string): Promise<{ eventId: string }>;
  /**
   * Sends events in order, each as sendEvent would (same txnId rules); stops at the first that
   * fails. Never rejects: `eventIds` holds the events of the prefix that was sent, and `error`
   * what stopped the rest. A homeserver may do it in one step (the local backend, in one
   * transaction); Synapse sends one by one.
   */
  sendEvents(roomId: string, events: OutgoingEvent[]): Promise<SentEvents>;
  /** Present only when the homeserver lives in the index's own database. */
  readonly sendsInIndex?: SendsInIndexStatement;
  /**
   * One event with its full content, read by `asUser`: one of the service's own users who is
   * in the room, by default the sync user (which joins every channel room). Never a Matrix
   * user outside the namespace, such as the event's sender: an application service may not
   * act as them (Synapse: M_FORBIDDEN "cannot masquerade as this user").
   */
  getEvent(roomId: string, eventId: string, asUser?: string): Promise<MatrixEvent>;
  /** Redacts an event; idempotent per txnId like sendEvent. */
  redact(roomId: string, asUser: string, eventId: string, txnId: string, reason?: string): Promise<{ eventId: string }>;
  /** PUT /rooms/{room}/typing/{user}: `asUser` starts (for timeoutMs) or stops typing. */
  setTyping(roomId: string, asUser: string, typing: boolean, timeoutMs: number): Promise<void>;
  /** POST /rooms/{room}/read_markers: moves both m.fully_read and the public m.read receipt to eventId. */
  setReadMarker(roomId: string, asUser: string, eventId: string): Promise<void>;
  /**
   * GET /voip/turnServer as `asUser`: TURN credentials the homeserver computes for that user,
   * or null when it has no TURN server configured (Synapse then answers `{}`).
   */
  turnServer(asUser: string): Promise<TurnServer | null>;
  /** Stores a file in the media repository as `asUser`; the answer is its mxc URI. */
  uploadMedia(asUser: string, data: Uint8Array, contentType: string, filename: string | null): Promise<UploadedMedia>;
  /** Fetches a file by its mxc URI (authenticated media); unknown media is M_NOT_FOUND. */
  downloadMedia(mxcUri: string): Promise<DownloadedMedia>;
  /**
   * GET /_matrix/client/v1/media/preview_url (authenticated media): the homeserver's Open Graph
   * data for a link (og:title, og:description, og:site_name, og:image as an mxc:// URI,
   * og:image:width/height, matrix:image:size), `{}` when the page has none. A link the
   * homeserver will not or cannot fetch is a MatrixError. `ts`: the moment the link was posted.
   */
  previewUrl(url: string, ts: number): Promise<Record<string, unknown>>;
  /** GET /rooms/{room}/messages as the sync user: one page of a room's timeline. */
  roomMessages(roomId: string, opts: RoomMessagesRequest): Promise<RoomMessagesPage>;
  /** Long-polls for timeline events after `since`; null starts from now, with no events. */
  sync(since: string | null, timeoutMs: number, signal: AbortSignal): Promise<SyncBatch>;
  /**
   * Resolves when the homeserver answers a cheap request (readiness); rejects when it cannot be
   * reached. The caller bounds the wait to timeoutMs; an adapter that makes a request aborts it
   * then (with a TimeoutError, src/deadline.ts).
   */
  ping(timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

/** A refusal or failure from the homeserver, carrying the Matrix errcode. */
export class MatrixError extends Error {
  constructor(
    readonly errcode: string,
    message: string,
    readonly httpStatus = 502,
  ) {
    super(message);
    this.name = "MatrixError";
  }
}

/** `mxc://server/mediaId` -> its parts; null for anything else. */
export function parseMxcUri(uri: string): { serverName: string; mediaId: string } | null {
  const m = /^mxc:\/\/([A-Za-z0-9.:-]+)\/([A-Za-z0-9_-]+)$/.exec(uri);
  return m ? { serverName: m[1]!, mediaId: m[2]! } : null;
}

export const joinRuleFor = (v: Visibility) => (v === "public" ? "public" : "invite");
export const presetFor = (v: Visibility) => (v === "public" ? "public_chat" : "private_chat");
