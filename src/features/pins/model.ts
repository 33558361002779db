import { t } from "elysia";
export { PinView } from "../../wire/views.ts";
export { toPinView } from "../../store/views.ts";

export const PinBody = t.Object({ message_id: t.String({ format: "uuid" }) }, { additionalProperties: false });
export const PinParams = t.Object({ id: t.String({ format: "uuid" }), message_id: t.String({ format: "uuid" }) });
