-- A channel being created: written before its Matrix room is, so that a creation cut short
-- (a crash between the room and the channel row) is finished by its retry, or by reconcile,
-- instead of leaving an orphan room and a slug nobody can use. Deleted when the channel row is
-- written. The id is the channel's (derived from the Idempotency-Key when there is one).
CREATE TABLE channel_creations (
  channel_id   UUID PRIMARY KEY,
  slug         TEXT NOT NULL,
  microdao_id  TEXT NOT NULL,
  created_by   TEXT NOT NULL,
  request      JSONB NOT NULL,
  created_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT channel_creations_slug_unique UNIQUE (slug, microdao_id)
);
