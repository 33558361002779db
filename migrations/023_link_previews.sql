-- Link previews (README "Link previews"): a message's preview of its first link, fetched after
-- it is sent by the preview worker (src/features/previews), never on the send path.
--
-- On the message:
--   link_preview_url   the link it wants previewed; null when it wants none (no link, not text,
--                      opted out, a confidential channel)
--   link_preview       the preview once there: {url, title, description, site_name, image_url,
--                      image_width, image_height}; null until then, and for good when the page
--                      had nothing to show or could not be fetched
--   link_previews_off  its sender said no previews (`link_preview: false`, or an empty MSC4095
--                      list); an edit keeps that unless it says otherwise
ALTER TABLE messages ADD COLUMN link_preview_url TEXT;
ALTER TABLE messages ADD COLUMN link_preview JSONB;
ALTER TABLE messages ADD COLUMN link_previews_off BOOLEAN NOT NULL DEFAULT false;

-- "A preview is wanted": written by the statement that writes the message's row (a send's
-- pending INSERT, a Matrix message's INSERT) or in its edit's transaction, so a crash never
-- loses one. The worker claims a job for a while (claimed_by, claimed_until: any instance may
-- take it, one at a time, and an expired claim is taken again); the statement that writes the
-- preview deletes it. Jobs of messages not yet sent wait. Not fenced: claims are not the owner's.
CREATE TABLE link_preview_jobs (
  message_id     UUID PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
  channel_id     UUID NOT NULL,
  url            TEXT NOT NULL,
  created_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
  attempts       INTEGER NOT NULL DEFAULT 0,
  claimed_by     TEXT,
  claimed_until  TIMESTAMPTZ
);
CREATE INDEX link_preview_jobs_created_idx ON link_preview_jobs (created_at);

-- Previews by link (the fetched URL, without its fragment), shared by every message with that
-- link until expires_at: a hundred messages with one link fetch it once. A page with nothing to
-- show is kept as preview null; a fetch that failed too (failed), for a shorter while.
CREATE TABLE link_preview_cache (
  url         TEXT PRIMARY KEY,
  preview     JSONB,
  failed      BOOLEAN NOT NULL DEFAULT false,
  fetched_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX link_preview_cache_expires_idx ON link_preview_cache (expires_at);
