-- Membership, pins and archive.
-- The audit log gets a position, so GET …/events pages newest first without skipping or
-- repeating rows written in one transaction (which share created_at).
ALTER TABLE channel_events ADD COLUMN position BIGSERIAL;
CREATE INDEX channel_events_channel_position_idx ON channel_events(channel_id, position DESC);

-- The messages pinned in a channel: the index of the room's m.room.pinned_events state.
CREATE TABLE channel_pins (
  channel_id       UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  message_id       UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  matrix_event_id  TEXT NOT NULL,
  pinned_by        TEXT NOT NULL,
  pinned_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (channel_id, message_id)
);
