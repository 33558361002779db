import { t } from "elysia";

/** Matrix's error shape, which the push endpoint answers the homeserver in (extra fields are allowed). */
export const MatrixErrorBody = t.Object({ errcode: t.String(), error: t.String(), request_id: t.Optional(t.String()) });
