/** A Matrix room event as the adapters hand it over and the inbox keeps it. */
export interface MatrixEvent {
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  state_key?: string;
  content: Record<string, unknown>;
  origin_server_ts: number;
  redacts?: string;
  /** Filled in by the adapter where it knows it: the sender's room display name. */
  sender_display_name?: string | null;
}

/**
 * The Matrix event types the service indexes: the /sync filter asks for them, and the inbox
 * keeps only them. Feature modules add theirs here.
 */
export const TIMELINE_EVENT_TYPES: string[] = [
  "m.room.message",
  "m.room.member",
  "m.room.name",
  "m.room.topic",
  "m.room.redaction",
  "m.reaction",
  "m.room.power_levels",
  "m.room.pinned_events",
  "m.room.encrypted",
];

/** State event types whose current value the sync filter should include. */
export const STATE_EVENT_TYPES: string[] = ["m.room.member", "m.room.name", "m.room.topic", "m.room.power_levels", "m.room.pinned_events"];

/** Ephemeral (non-timeline) event types, such as typing and receipts. */
export const EPHEMERAL_EVENT_TYPES: string[] = ["m.typing", "m.receipt"];
