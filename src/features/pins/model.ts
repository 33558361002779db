import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MessageView } from "../messages/model.ts";
import { toMessageView } from "../messages/view.ts";
import type { MessageRow } from "../../store/rows.ts";
import type { PinRow } from "../../store/pins.ts";

export const PinView = t.Object({
  message_id: t.String({ format: "uuid" }),
  matrix_event_id: t.String(),
  pinned_by: t.String(),
  pinned_at: t.String({ format: "date-time" }),
  message: MessageView,
});
export type PinView = Static<typeof PinView>;

export function toPinView(pin: PinRow, message: MessageRow): PinView {
  return {
    message_id: pin.message_id,
    matrix_event_id: pin.matrix_event_id,
    pinned_by: pin.pinned_by,
    pinned_at: pin.pinned_at.toISOString(),
    message: toMessageView(message),
  };
}

export const PinBody = t.Object({ message_id: t.String({ format: "uuid" }) }, { additionalProperties: false });
export const PinParams = t.Object({ id: t.String({ format: "uuid" }), message_id: t.String({ format: "uuid" }) });
