-- Calls: the index of who is in a call in each channel's room, read from Matrix.
-- MatrixRTC memberships, one row per device and call of a call-member state event (the event
-- type and state key name the slot; a new event for the slot replaces its rows, an empty one
-- leaves them none). A row counts while expires_at is in the future.
CREATE TABLE call_memberships (
  channel_id       UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  state_type       TEXT NOT NULL,
  state_key        TEXT NOT NULL,
  device_id        TEXT NOT NULL,
  call_id          TEXT NOT NULL,
  application      TEXT NOT NULL,
  scope            TEXT,
  matrix_user_id   TEXT NOT NULL,
  member_id        TEXT NOT NULL,
  matrix_event_id  TEXT NOT NULL,
  joined_at        TIMESTAMPTZ NOT NULL,
  expires_at       TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (channel_id, state_type, state_key, device_id, call_id)
);
CREATE INDEX call_memberships_expiry_idx ON call_memberships(channel_id, expires_at);

-- Legacy 1:1 VoIP calls (m.call.invite / answer / hangup / reject), by call_id.
CREATE TABLE legacy_calls (
  channel_id        UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  call_id           TEXT NOT NULL,
  state             TEXT NOT NULL CHECK (state IN ('ringing', 'active', 'ended')),
  caller_id         TEXT,
  callee_id         TEXT,
  is_video          BOOLEAN NOT NULL DEFAULT false,
  invited_at        TIMESTAMPTZ,
  rings_until       TIMESTAMPTZ,
  answered_at       TIMESTAMPTZ,
  ended_at          TIMESTAMPTZ,
  end_reason        TEXT,
  updated_at        TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (channel_id, call_id)
);
CREATE INDEX legacy_calls_recent_idx ON legacy_calls(channel_id, updated_at DESC);
