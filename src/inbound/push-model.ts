import { t } from "elysia";

/** The homeserver's push: https://spec.matrix.org/latest/application-service-api/#pushing-events */
export const PushTransactionBody = t.Object(
  {
    events: t.Array(
      t.Object(
        {
          event_id: t.String({ minLength: 1, maxLength: 255 }),
          room_id: t.String({ minLength: 1, maxLength: 255 }),
          sender: t.String({ minLength: 1, maxLength: 255 }),
          type: t.String({ minLength: 1, maxLength: 255 }),
          content: t.Record(t.String(), t.Unknown()),
          origin_server_ts: t.Number(),
          state_key: t.Optional(t.String()),
        },
        { additionalProperties: true },
      ),
    ),
    /** Typing and receipts (MSC2409, `receive_ephemeral: true` in the registration). */
    ephemeral: t.Optional(
      t.Array(
        t.Object(
          {
            type: t.String({ minLength: 1, maxLength: 255 }),
            room_id: t.Optional(t.String({ minLength: 1, maxLength: 255 })),
            content: t.Record(t.String(), t.Unknown()),
          },
          { additionalProperties: true },
        ),
      ),
    ),
  },
  { additionalProperties: true },
);

export const TxnParams = t.Object({ txnId: t.String({ minLength: 1, maxLength: 255 }) });
