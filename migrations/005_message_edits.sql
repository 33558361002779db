-- Edit history (m.replace). Version 1 is the original text, written when the first edit
-- arrives; each edit adds the next version. matrix_event_id recognises our own edits when
-- they echo back from the homeserver. A deleted (redacted) message loses its history too.
CREATE TABLE message_edits (
  id               UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id       UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  version          INTEGER NOT NULL,
  matrix_event_id  TEXT NULL UNIQUE,
  editor_id        TEXT NOT NULL,
  content_preview  TEXT NOT NULL,
  formatted_body   TEXT NULL,
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT message_edits_version_unique UNIQUE (message_id, version)
);

-- Reactions are found by their Matrix event when a redaction of one comes back.
CREATE INDEX message_reactions_event_idx ON message_reactions(matrix_event_id);
