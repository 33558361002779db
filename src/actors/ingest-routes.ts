import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import type { ActorContext } from "./context.ts";
import { ingestTyping } from "../features/presence/typing.ts";
import { ingestReceipt } from "../features/presence/receipts.ts";
import { ingestEdit, ingestReaction, ingestRedaction } from "../features/relations/ingest.ts";
import { ingestPowerLevels } from "../features/members/ingest.ts";
import { ingestPinnedEvents } from "../features/pins/ingest.ts";

/**
 * Feature modules index Matrix events here. The actor handles m.room.message, m.room.member,
 * m.room.name and m.room.topic itself; any other event type is looked up in `eventIngesters`,
 * and an m.room.message whose m.relates_to.rel_type is listed in `relationIngesters` (an edit,
 * say) goes there instead of becoming a new message. An ingester must consume the event's
 * inbox row (consumeInboxEvent) in the same transaction as its index change.
 */
export type Ingester = (ctx: ActorContext, event: MatrixEvent) => Promise<void>;

export const eventIngesters: Record<string, Ingester> = {
  "m.reaction": ingestReaction,
  "m.room.redaction": ingestRedaction,
  "m.room.power_levels": ingestPowerLevels,
  "m.room.pinned_events": ingestPinnedEvents,
};

export const relationIngesters: Record<string, Ingester> = {
  "m.replace": ingestEdit,
};

/**
 * Ephemeral events (no event id, not durable) by type. They run inside the channel's actor,
 * after the timeline of the same sync batch is indexed.
 */
export type EphemeralIngester = (ctx: ActorContext, event: EphemeralEvent) => Promise<void>;

export const ephemeralIngesters: Record<string, EphemeralIngester> = {
  "m.typing": ingestTyping,
  "m.receipt": ingestReceipt,
};
