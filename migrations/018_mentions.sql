-- Mentions (issue 16, item 5). A message's mentioned members: on the message itself, for its
-- view (REST, WebSocket frames), and one row each in message_mentions, for GET /mentions. Both
-- are written by the statement that writes the message's index row, so neither exists without
-- the other. `position` orders a member's mentions as they were indexed (newest first pages by it).
ALTER TABLE messages ADD COLUMN mentions TEXT[] NOT NULL DEFAULT '{}';

CREATE TABLE message_mentions (
  position    BIGSERIAL PRIMARY KEY,
  message_id  UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  channel_id  UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  member_id   TEXT NOT NULL,
  seq         BIGINT NOT NULL,
  created_at  TIMESTAMPTZ NOT NULL,
  CONSTRAINT message_mentions_once UNIQUE (message_id, member_id)
);
-- A member's mentions, newest first, paged by position.
CREATE INDEX message_mentions_member_idx ON message_mentions(member_id, position DESC);
