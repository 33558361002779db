-- Per-channel ordering and the send outbox.
-- seq is assigned by the channel actor: strictly increasing and gap-free within a channel.
-- A send is written as 'pending' before Matrix sees it; its id doubles as the Matrix txnId,
-- and outbox_content keeps what must be sent until Matrix confirms (then it is cleared:
-- Matrix holds the full content, the index only a preview).

ALTER TABLE messages ADD COLUMN seq BIGINT;
ALTER TABLE messages ALTER COLUMN matrix_event_id DROP NOT NULL;
ALTER TABLE messages ADD COLUMN delivery_state TEXT NOT NULL DEFAULT 'sent';
ALTER TABLE messages ADD CONSTRAINT messages_delivery_state_check
  CHECK (delivery_state IN ('pending', 'sent', 'failed'));
ALTER TABLE messages ADD COLUMN outbox_content JSONB NULL;
ALTER TABLE messages ADD COLUMN failure_reason TEXT NULL;
ALTER TABLE messages ADD COLUMN msgtype TEXT NULL;
ALTER TABLE messages ADD COLUMN reply_to UUID NULL REFERENCES messages(id);
ALTER TABLE messages ADD COLUMN sender_display_name TEXT NULL;
ALTER TABLE channels ADD COLUMN matrix_alias TEXT NULL;
ALTER TABLE messages ADD CONSTRAINT messages_sent_has_event
  CHECK (delivery_state <> 'sent' OR matrix_event_id IS NOT NULL);

-- Existing rows (none in a fresh install) get a seq in creation order.
UPDATE messages m SET seq = numbered.n
  FROM (SELECT id, row_number() OVER (PARTITION BY channel_id ORDER BY created_at, id) AS n FROM messages) numbered
  WHERE numbered.id = m.id;
ALTER TABLE messages ALTER COLUMN seq SET NOT NULL;
ALTER TABLE messages ADD CONSTRAINT messages_channel_seq_unique UNIQUE (channel_id, seq);
CREATE INDEX messages_pending_idx ON messages(channel_id, seq) WHERE delivery_state = 'pending';
