import { Elysia, t } from "elysia";
import type { Sql } from "../../store/db.ts";
import type { InboxDispatcher } from "../../matrix/dispatcher.ts";
import { storePushTransaction } from "../../matrix/inbox.ts";
import type { EphemeralEvent, MatrixEvent } from "../../matrix/port.ts";
import { MatrixErrorBody, PushTransactionBody, TxnParams } from "./model.ts";
import { MatrixApiError } from "../../errors.ts";
import { sameSecret } from "../../http/auth/secrets.ts";

/**
 * The application-service API the homeserver pushes to. Errors here use Matrix's
 * `{errcode, error}` shape, since the caller is a homeserver. A transaction is answered 200
 * only after its events and its txnId are committed together; a repeated txnId is a no-op.
 */
export const appserviceController = (deps: { sql: Sql; hsToken: string | undefined; dispatcher: InboxDispatcher }) =>
  new Elysia({ name: "appservice.controller", prefix: "/_matrix/app/v1" })
    .onBeforeHandle(({ headers, query }) => {
      const auth = headers.authorization;
      const given = auth?.startsWith("Bearer ") ? auth.slice(7) : (query as Record<string, string | undefined>).access_token;
      if (!given) throw new MatrixApiError(401, "M_UNAUTHORIZED", "missing hs_token");
      if (!deps.hsToken || !sameSecret(given, deps.hsToken)) throw new MatrixApiError(403, "M_FORBIDDEN", "bad hs_token");
    })
    .put(
      "/transactions/:txnId",
      async ({ params, body }) => {
        const fresh = await storePushTransaction(deps.sql, params.txnId, body.events as unknown as MatrixEvent[]);
        if (fresh) {
          // Typing and receipts are not made durable (a lost one is superseded by the next); they
          // follow the timeline, so a receipt finds the message it names. The homeserver does not wait.
          const ephemeral = (body.ephemeral ?? []).filter((e): e is EphemeralEvent => typeof e.room_id === "string");
          void deps.dispatcher
            .drain()
            .then(() => (ephemeral.length > 0 ? deps.dispatcher.deliverEphemeral(ephemeral) : undefined))
            .catch(() => {});
        }
        return {};
      },
      {
        params: TxnParams,
        body: PushTransactionBody,
        response: { 200: t.Object({}), 401: MatrixErrorBody, 403: MatrixErrorBody },
        detail: { summary: "Events pushed by the homeserver (application-service push mode)", tags: ["matrix"] },
      },
    )
    .post("/ping", () => ({}), { detail: { summary: "Homeserver reachability check", tags: ["matrix"] } })
    .get("/users/:userId", ({ set }) => {
      set.status = 404;
      return { errcode: "M_NOT_FOUND", error: "users are created on first use" };
    }, { detail: { tags: ["matrix"] } })
    .get("/rooms/:alias", ({ set }) => {
      set.status = 404;
      return { errcode: "M_NOT_FOUND", error: "rooms are created through the DAARION API" };
    }, { detail: { tags: ["matrix"] } });
