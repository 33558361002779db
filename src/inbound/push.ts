import { Elysia, t } from "elysia";
import type { Sql } from "../store/db.ts";
import type { InboxDispatcher } from "./dispatcher.ts";
import { storePushTransaction } from "../store/inbox.ts";
import type { EphemeralEvent, MatrixEvent } from "../matrix/port.ts";
import { PushTransactionBody, TxnParams } from "./push-model.ts";
import { MatrixErrorBody } from "../wire/matrix-error.ts";
import { MatrixApiError } from "../errors.ts";
import { currentRequestId } from "../request-context.ts";
import { sameSecret } from "../http/auth/secrets.ts";

const APPSERVICE_PATH = /^\/_matrix\/app\//;

/**
 * The homeserver authenticates with hs_token. Checked when the request arrives, before its body
 * (up to 32 MiB) is read, parsed or validated: a caller without the token costs nothing.
 * The app registers it ahead of the body limit, so a wrong token is 401/403 whatever the body.
 */
export const homeserverAuthentication = (hsToken: string | undefined) =>
  // Named (and seeded) so that using it again, as the controller does, adds no second check.
  new Elysia({ name: "appservice.auth", seed: hsToken ?? "" }).onRequest(({ request }) => {
    const url = new URL(request.url);
    if (!APPSERVICE_PATH.test(url.pathname)) return;
    const auth = request.headers.get("authorization");
    const given = auth?.startsWith("Bearer ") ? auth.slice(7) : url.searchParams.get("access_token");
    if (!given) throw new MatrixApiError(401, "M_UNAUTHORIZED", "missing hs_token");
    if (!hsToken || !sameSecret(given, hsToken)) throw new MatrixApiError(403, "M_FORBIDDEN", "bad hs_token");
  });

/**
 * The application-service API the homeserver pushes to (authenticated by
 * homeserverAuthentication). Errors here use Matrix's `{errcode, error}` shape, since the
 * caller is a homeserver. A transaction is answered 200 only after its events and its txnId
 * are committed together; a repeated txnId is a no-op.
 */
export const appserviceController = (deps: { sql: Sql; hsToken: string | undefined; dispatcher: InboxDispatcher }) =>
  new Elysia({ name: "appservice.controller", prefix: "/_matrix/app/v1" })
    .use(homeserverAuthentication(deps.hsToken))
    .put(
      "/transactions/:txnId",
      async ({ params, body }) => {
        const fresh = await storePushTransaction(deps.sql, params.txnId, body.events as unknown as MatrixEvent[], deps.dispatcher.eventTypes);
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
      return { errcode: "M_NOT_FOUND", error: "users are created on first use", request_id: currentRequestId() };
    }, { detail: { summary: "Homeserver user query: always 404, users are created on first use", tags: ["matrix"] } })
    .get("/rooms/:alias", ({ set }) => {
      set.status = 404;
      return { errcode: "M_NOT_FOUND", error: "rooms are created through the DAARION API", request_id: currentRequestId() };
    }, { detail: { summary: "Homeserver room alias query: always 404, rooms are created through the API", tags: ["matrix"] } });
