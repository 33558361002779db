import type { TSchema } from "@sinclair/typebox";
import { ClientFrame, SentFrame, ServerFrame, WsQuery } from "../realtime/model.ts";
import { MessageView } from "../features/messages/model.ts";
import { MemberView } from "../features/members/model.ts";
import { ChannelView } from "../features/channels/model.ts";
import { PinView } from "../features/pins/model.ts";
import { ReactionSummary } from "../wire/reaction-summary.ts";
import { REPLAY_MAX_MESSAGES } from "../realtime/replay-model.ts";
import { Subjects } from "../events/model.ts";
import { CLOSE_CODES, ErrorFrame, PingText, PongText } from "./frames.ts";
import { SUBJECT_PAYLOADS, SUBJECT_SUMMARIES } from "./nats-payloads.ts";

type Json = Record<string, unknown>;

/** Views that several frames carry: one schema each in components.schemas. */
const SHARED_SCHEMAS: Record<string, TSchema> = { MessageView, MemberView, ChannelView, PinView, ReactionSummary };

const FRAME_SUMMARIES: Record<string, string> = {
  "message.created": "A message of the channel, live or replayed (thread replies included)",
  "message.failed": "Matrix refused an accepted send for good: the message stays, with status failed and its reason",
  "message.updated": "A message changed: edited, a pending send confirmed, or the preview of its first link arrived (message.link_preview)",
  "message.deleted": "A message was deleted: remove it",
  "member.joined": "Someone was invited or joined (also from Matrix)",
  "member.left": "Someone left or was kicked (kicked_by is set then)",
  "member.updated": "A member's role or capabilities changed",
  "channel.updated": "The channel changed (PATCH, or from Matrix)",
  "channel.archived": "The channel was archived",
  "reaction.added": "A reaction was added (count after the change)",
  "reaction.removed": "A reaction was removed (count after the change)",
  "message.pinned": "A message was pinned",
  "message.unpinned": "A message was unpinned",
  "call.updated": "The channel's call state changed: who is in a call now (as GET …/channels/{id}/call answers)",
  typing: "Everyone typing in the channel now: replace the indicator with this list",
  read: "A member's read position moved forward",
  resumed: "Ends a replay: every frame after it is live. seq is the channel's latest seq then",
  resync_required: `More than max_replay (${REPLAY_MAX_MESSAGES}) messages to replay; the socket is closed next`,
  error: "A client frame was refused or not understood, or a replay could not finish (the socket stays open unless a close follows)",
};

/**
 * The AsyncAPI 3 document of the realtime side: the WebSocket /ws/messaging/{channel_id} and
 * the NATS subjects, built from the TypeBox models that the server itself checks and sends.
 */
export function buildAsyncApiDocument(): Json {
  const shared = new Map<object, string>(Object.entries(SHARED_SCHEMAS).map(([name, schema]) => [schema, name]));
  const toJson = (schema: TSchema) => jsonSchema(schema, shared, true);

  const serverFrames = objectMembers(SentFrame);
  const broadcastOnly = new Set(objectMembers(ServerFrame));
  const clientFrames = objectMembers(ClientFrame);

  const messages: Json = {};
  const wsMessages: Json = {};
  const addWs = (key: string, message: Json) => {
    messages[key] = message;
    wsMessages[key] = { $ref: `#/components/messages/${key}` };
    return { $ref: `#/channels/websocket/messages/${key}` };
  };

  const sent = serverFrames.map((frame) => {
    const type = frameType(frame);
    // Frames of the broadcast union get the channel's latest seq when they carry none (see README).
    const payload = broadcastOnly.has(frame) ? withSeq(toJson(frame)) : toJson(frame);
    return addWs(`server.${type}`, { name: type, title: type, summary: FRAME_SUMMARIES[type] ?? type, payload });
  });
  const error = addWs("server.error", { name: "error", title: "error", summary: FRAME_SUMMARIES.error, payload: toJson(ErrorFrame) });
  const pong = addWs("server.pong", { name: "pong", title: "pong", summary: 'The answer to "ping"', contentType: "text/plain", payload: toJson(PongText) });
  const received = Object.fromEntries(
    clientFrames.map((frame) => {
      const type = frameType(frame);
      return [type, addWs(`client.${type}`, { name: type, title: type, summary: CLIENT_SUMMARIES[type] ?? type, payload: toJson(frame) })];
    }),
  );
  const ping = addWs("client.ping", {
    name: "ping",
    title: "ping",
    summary: "Keepalive, plain text (not JSON); answered with pong",
    contentType: "text/plain",
    payload: toJson(PingText),
  });
  const replayed = sent.find((ref) => ref.$ref.endsWith("/server.message.created"))!;
  const resumed = sent.find((ref) => ref.$ref.endsWith("/server.resumed"))!;
  const resyncRequired = sent.find((ref) => ref.$ref.endsWith("/server.resync_required"))!;
  const websocket = { $ref: "#/channels/websocket" };

  const channels: Json = {
    websocket: {
      address: "/ws/messaging/{channel_id}",
      title: "A channel's live frames",
      description: websocketDescription(),
      servers: [{ $ref: "#/servers/websocket" }],
      parameters: { channel_id: { description: "The channel's id (a UUID)" } },
      messages: wsMessages,
      bindings: {
        ws: {
          method: "GET",
          query: toJson(WsQuery),
          headers: {
            type: "object",
            properties: {
              "X-User-Id": { type: "string", description: "AUTH_MODE=dev: the caller's identity, e.g. user:alice" },
              "Sec-WebSocket-Protocol": { type: "string", description: "AUTH_MODE=jwt: the subprotocols bearer, <token>" },
            },
          },
          bindingVersion: "0.1.0",
        },
      },
      "x-close-codes": CLOSE_CODES,
    },
  };
  const operations: Json = {
    sendFrames: {
      action: "send",
      title: "Frames the server pushes",
      summary: "Exactly once to every subscriber, in channel order; every frame carries seq",
      channel: websocket,
      messages: [...sent, error],
    },
    receiveTyping: {
      action: "receive",
      summary: "Start or stop typing (as POST …/typing); a refusal is answered with an error frame",
      channel: websocket,
      messages: [received.typing],
      reply: { channel: websocket, messages: [error] },
    },
    receiveResume: {
      action: "receive",
      summary: "Replay every message after since_seq, then live frames (the same as ?since_seq= on the upgrade)",
      description:
        "Answered with message.created frames in seq order, then resumed; or resync_required and close 4410 when more " +
        `than ${REPLAY_MAX_MESSAGES} messages wait; or error (INVALID_SINCE_SEQ beyond the latest seq, UNKNOWN_FRAME for a bad since_seq).`,
      channel: websocket,
      messages: [received.resume],
      reply: { channel: websocket, messages: [replayed, resumed, resyncRequired, error] },
    },
    receivePing: { action: "receive", summary: "Keepalive", channel: websocket, messages: [ping], reply: { channel: websocket, messages: [pong] } },
  };

  for (const subject of Object.values(Subjects)) {
    messages[subject] = { name: subject, title: subject, summary: SUBJECT_SUMMARIES[subject], payload: toJson(SUBJECT_PAYLOADS[subject]) };
    channels[subject] = {
      address: subject,
      servers: [{ $ref: "#/servers/nats" }],
      messages: { [subject]: { $ref: `#/components/messages/${subject}` } },
    };
    operations[`publish.${subject}`] = {
      action: "send",
      summary: SUBJECT_SUMMARIES[subject],
      channel: { $ref: `#/channels/${subject}` },
      messages: [{ $ref: `#/channels/${subject}/messages/${subject}` }],
    };
  }

  return {
    asyncapi: "3.1.0",
    info: {
      title: "DAARION messaging: realtime",
      version: "0.1.0",
      description:
        "The WebSocket stream of a channel and the NATS events of the DAARION messaging service, generated from the " +
        "TypeBox models the service sends. The REST API is at /docs/json.",
    },
    defaultContentType: "application/json",
    servers: {
      websocket: {
        host: "localhost:7004",
        protocol: "ws",
        description: "The service itself (wss behind TLS)",
        security: ["devUserId", "devUserIdQuery", "bearer"].map((name) => ({ $ref: `#/components/securitySchemes/${name}` })),
      },
      nats: {
        host: "localhost:4222",
        protocol: "nats",
        description:
          "NATS_URL; JetStream stream MESSAGING (subjects messaging.>, kept 7 days). Each payload's event_id is also its " +
          "Nats-Msg-Id, so a republish within the 2-hour duplicate window is dropped.",
      },
    },
    channels,
    operations,
    components: {
      schemas: Object.fromEntries(Object.entries(SHARED_SCHEMAS).map(([name, schema]) => [name, jsonSchema(schema, shared, false)])),
      messages,
      securitySchemes: {
        devUserId: { type: "httpApiKey", name: "X-User-Id", in: "header", description: "AUTH_MODE=dev: the caller's identity, trusted unverified" },
        devUserIdQuery: { type: "httpApiKey", name: "user_id", in: "query", description: "AUTH_MODE=dev, from a browser (which cannot set headers on a WebSocket)" },
        bearer: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "AUTH_MODE=jwt: the subprotocols [\"bearer\", <token>], or ?access_token=",
        },
      },
    },
  };
}

const CLIENT_SUMMARIES: Record<string, string> = {
  typing: "Start or stop typing",
  resume: "Replay every message after since_seq, then live frames",
};

function websocketDescription(): string {
  const rows = CLOSE_CODES.map((c) => `| ${c.code} | ${c.meaning} | ${c.client_action} |`);
  return [
    "Connect with X-User-Id (or ?user_id=) in dev mode, or the subprotocols [\"bearer\", <token>] (or ?access_token=) in jwt mode. " +
      "The upgrade is refused with a JSON error before any socket exists: 401 without identity, 404 for an unknown channel or one the " +
      "caller may not read, 400 for a malformed id or since_seq.",
    "",
    "**Every frame carries seq**: a message frame its message's seq, any other frame the channel's latest message seq when it was sent. " +
      "A client keeps the highest seq of the message.created frames it processed.",
    "",
    `**Resume**: connect with ?since_seq=N or send {"type":"resume","since_seq":N}. The server sends every message with seq > N as ` +
      "message.created, in seq order, then resumed, then live frames, with no gap and no duplicate. More than " +
      `${REPLAY_MAX_MESSAGES} messages to replay: resync_required, then close 4410.`,
    "",
    "| close code | meaning | what the client does |",
    "|---|---|---|",
    ...rows,
  ].join("\n");
}

/** The object members of a (nested) union, in order. */
function objectMembers(schema: TSchema): TSchema[] {
  if (Array.isArray(schema.anyOf)) return schema.anyOf.flatMap(objectMembers);
  if (Array.isArray(schema.allOf)) return schema.allOf.flatMap(objectMembers);
  return schema.type === "object" && schema.properties?.type ? [schema] : [];
}

function frameType(frame: TSchema): string {
  const type = frame.properties?.type?.const;
  if (typeof type !== "string") throw new Error("a frame model without a literal type");
  return type;
}

function withSeq(payload: Json): Json {
  const properties = payload.properties as Json;
  if (properties.seq) return payload;
  return {
    ...payload,
    properties: { ...properties, seq: { type: "integer", description: "The channel's latest message seq when the frame was sent" } },
    required: [...((payload.required as string[]) ?? []), "seq"],
  };
}

/** TypeBox schemas are JSON Schema plus symbol keys; shared views become $refs (except at the top). */
function jsonSchema(node: unknown, shared: Map<object, string>, replaceTop: boolean): Json {
  const convert = (value: unknown, top: boolean): unknown => {
    if (Array.isArray(value)) return value.map((item) => convert(item, false));
    if (!value || typeof value !== "object") return value;
    const name = shared.get(value);
    if (name && (!top || replaceTop)) return { $ref: `#/components/schemas/${name}` };
    const plain = jsonNumber(value as Json) ?? value;
    return Object.fromEntries(Object.entries(plain).map(([key, item]) => [key, convert(item, false)]));
  };
  return convert(node, true) as Json;
}

/**
 * Elysia's t.Integer and t.Numeric also admit a numeric string, for query strings. Frames and
 * events are JSON, where only the number passes the server's check: that branch alone is documented.
 */
function jsonNumber(schema: Json): Json | null {
  const branches = schema.anyOf;
  if (!Array.isArray(branches) || branches.length !== 2) return null;
  const numeric = branches.find((b) => b.type === "integer" || b.type === "number");
  const coerced = branches.find((b) => b.type === "string" && (b.format === "integer" || b.format === "numeric"));
  if (!numeric || !coerced) return null;
  const { anyOf: _, ...outer } = schema;
  return { ...outer, ...numeric };
}
