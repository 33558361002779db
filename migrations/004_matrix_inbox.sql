-- Events from the homeserver are made durable here before anything else happens to them:
-- the /sync poller writes a batch together with its next_batch, the push endpoint writes a
-- transaction together with its txnId, both in one database transaction. Channel actors then
-- index each event and delete its inbox row in the same transaction as the index change, so
-- an event is neither lost (crash before indexing: it is still here) nor indexed twice
-- (its event id is unique here and in the index).

CREATE TABLE matrix_inbox (
  position     BIGSERIAL PRIMARY KEY,
  event_id     TEXT NOT NULL UNIQUE,
  room_id      TEXT NOT NULL,
  event        JSONB NOT NULL,
  received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE matrix_push_transactions (
  txn_id       TEXT PRIMARY KEY,
  event_count  INTEGER NOT NULL,
  received_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- Members who come from Matrix directly (e.g. `matrix:@bob:example.org`) keep their display name.
ALTER TABLE channel_members ADD COLUMN display_name TEXT NULL;
