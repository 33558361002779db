-- Full-text search over message previews, and files sent through the Matrix media API.

-- 'simple' only lower-cases and splits words: no stemming and no stop words, so it treats
-- every language alike (a stemmer for one language would mangle the others). Generated, so
-- edits to the preview re-index without any code.
ALTER TABLE messages ADD COLUMN search_vector tsvector
  GENERATED ALWAYS AS (to_tsvector('simple', content_preview)) STORED;
CREATE INDEX messages_search_idx ON messages USING GIN (search_vector);

-- A media message's mxc URL and what the download needs, so serving a file never has to
-- fetch the Matrix event first.
ALTER TABLE messages ADD COLUMN media_url TEXT NULL;
ALTER TABLE messages ADD COLUMN media_mimetype TEXT NULL;
ALTER TABLE messages ADD COLUMN media_size BIGINT NULL;
ALTER TABLE messages ADD COLUMN media_filename TEXT NULL;

-- The built-in local backend's media repository (Synapse keeps its own).
CREATE TABLE local_matrix_media (
  media_id      TEXT PRIMARY KEY,
  uploader      TEXT NOT NULL,
  content_type  TEXT NOT NULL,
  filename      TEXT NULL,
  size          BIGINT NOT NULL,
  data          BYTEA NOT NULL,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
