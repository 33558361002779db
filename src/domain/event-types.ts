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
 * keeps only them. They are derived from the features' event handlers (features/index.ts),
 * never listed by hand.
 */
export interface EventTypes {
  timeline: string[];
  /** State event types whose current value the sync filter should include. */
  state: string[];
  /** Ephemeral (non-timeline) event types, such as typing and receipts. */
  ephemeral: string[];
}
