-- The built-in local Matrix backend: just enough of a homeserver (rooms, aliases, state,
-- membership, timeline, transaction ids and a sync stream) to run without Synapse.
-- Used only when MATRIX_HOMESERVER_URL is unset.

CREATE TABLE local_matrix_users (
  user_id       TEXT PRIMARY KEY,
  display_name  TEXT NULL,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE local_matrix_rooms (
  room_id     TEXT PRIMARY KEY,
  creator     TEXT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE local_matrix_aliases (
  alias    TEXT PRIMARY KEY,
  room_id  TEXT NOT NULL REFERENCES local_matrix_rooms(room_id) ON DELETE CASCADE
);

-- stream_ordering is the sync position: every event of every room, in commit order.
CREATE TABLE local_matrix_events (
  stream_ordering  BIGSERIAL PRIMARY KEY,
  event_id         TEXT NOT NULL UNIQUE,
  room_id          TEXT NOT NULL REFERENCES local_matrix_rooms(room_id) ON DELETE CASCADE,
  sender           TEXT NOT NULL,
  type             TEXT NOT NULL,
  state_key        TEXT NULL,
  content          JSONB NOT NULL,
  origin_server_ts BIGINT NOT NULL,
  txn_id           TEXT NULL UNIQUE
);
CREATE INDEX local_matrix_events_room_idx ON local_matrix_events(room_id, stream_ordering);

CREATE TABLE local_matrix_state (
  room_id    TEXT NOT NULL REFERENCES local_matrix_rooms(room_id) ON DELETE CASCADE,
  type       TEXT NOT NULL,
  state_key  TEXT NOT NULL,
  event_id   TEXT NOT NULL,
  content    JSONB NOT NULL,
  PRIMARY KEY (room_id, type, state_key)
);

-- Where the /sync poller stands, per homeserver; written in the same transaction as the
-- events it indexed.
CREATE TABLE matrix_sync_state (
  homeserver  TEXT PRIMARY KEY,
  next_batch  TEXT NOT NULL,
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
