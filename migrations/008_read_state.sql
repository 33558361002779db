-- Read state: how far each member has read a channel, from the API or from their Matrix
-- client's m.read receipts. Only moves forward. Members from Matrix (matrix:@bob:server) are
-- kept like any other member id.
CREATE TABLE channel_read_state (
  channel_id          UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  member_id           TEXT NOT NULL,
  last_read_seq       BIGINT NOT NULL,
  last_read_event_id  TEXT NULL,
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, member_id)
);

-- Unread counts scan a channel's messages after a seq.
CREATE INDEX IF NOT EXISTS messages_channel_seq_live_idx ON messages(channel_id, seq)
  WHERE deleted_at IS NULL AND delivery_state <> 'failed';
