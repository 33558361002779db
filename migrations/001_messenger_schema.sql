-- The seed's messenger schema (channels, messages, members, reactions, audit log),
-- without its example rows: their room ids exist in no homeserver.

CREATE TABLE channels (
  id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  slug            TEXT NOT NULL,
  name            TEXT NOT NULL,
  description     TEXT,
  microdao_id     TEXT NOT NULL,
  team_id         UUID NULL,
  matrix_room_id  TEXT NOT NULL UNIQUE,
  matrix_version  TEXT DEFAULT '10',
  visibility      TEXT NOT NULL DEFAULT 'microdao',
  is_direct       BOOLEAN NOT NULL DEFAULT false,
  is_encrypted    BOOLEAN NOT NULL DEFAULT false,
  topic           TEXT,
  avatar_url      TEXT,
  created_by      TEXT NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  archived_at     TIMESTAMPTZ NULL,
  CONSTRAINT channels_slug_microdao_unique UNIQUE (slug, microdao_id),
  CONSTRAINT channels_visibility_check CHECK (visibility IN ('public', 'private', 'microdao'))
);
CREATE INDEX channels_microdao_idx ON channels(microdao_id);
CREATE INDEX channels_created_at_idx ON channels(created_at DESC);
CREATE INDEX channels_visibility_idx ON channels(visibility) WHERE archived_at IS NULL;

CREATE TABLE messages (
  id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id        UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  matrix_event_id   TEXT NOT NULL UNIQUE,
  matrix_type       TEXT NOT NULL,
  sender_id         TEXT NOT NULL,
  sender_type       TEXT NOT NULL,
  sender_matrix_id  TEXT NOT NULL,
  content_preview   TEXT NOT NULL,
  content_type      TEXT NOT NULL DEFAULT 'text',
  thread_id         UUID NULL REFERENCES messages(id),
  edited_at         TIMESTAMPTZ NULL,
  deleted_at        TIMESTAMPTZ NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT messages_sender_type_check CHECK (sender_type IN ('human', 'agent'))
);
CREATE INDEX messages_channel_created_idx ON messages(channel_id, created_at DESC);
CREATE INDEX messages_sender_idx ON messages(sender_id);
CREATE INDEX messages_thread_idx ON messages(thread_id) WHERE thread_id IS NOT NULL;

CREATE TABLE channel_members (
  id                 UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id         UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  member_id          TEXT NOT NULL,
  member_type        TEXT NOT NULL,
  matrix_user_id     TEXT NOT NULL,
  role               TEXT NOT NULL DEFAULT 'member',
  can_read           BOOLEAN NOT NULL DEFAULT true,
  can_write          BOOLEAN NOT NULL DEFAULT true,
  can_invite         BOOLEAN NOT NULL DEFAULT false,
  can_kick           BOOLEAN NOT NULL DEFAULT false,
  can_create_tasks   BOOLEAN NOT NULL DEFAULT false,
  matrix_power_level INTEGER NOT NULL DEFAULT 0,
  invited_by         TEXT NULL,
  joined_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  left_at            TIMESTAMPTZ NULL,
  CONSTRAINT channel_members_unique UNIQUE (channel_id, member_id),
  CONSTRAINT channel_members_type_check CHECK (member_type IN ('human', 'agent')),
  CONSTRAINT channel_members_role_check CHECK (role IN ('owner', 'admin', 'member', 'guest', 'agent'))
);
CREATE INDEX channel_members_channel_idx ON channel_members(channel_id) WHERE left_at IS NULL;
CREATE INDEX channel_members_member_idx ON channel_members(member_id) WHERE left_at IS NULL;

CREATE TABLE message_reactions (
  id              UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  message_id      UUID NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
  reactor_id      TEXT NOT NULL,
  reactor_type    TEXT NOT NULL,
  emoji           TEXT NOT NULL,
  matrix_event_id TEXT NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  removed_at      TIMESTAMPTZ NULL,
  CONSTRAINT message_reactions_unique UNIQUE (message_id, reactor_id, emoji),
  CONSTRAINT message_reactions_type_check CHECK (reactor_type IN ('human', 'agent'))
);
CREATE INDEX message_reactions_message_idx ON message_reactions(message_id) WHERE removed_at IS NULL;

CREATE TABLE channel_events (
  id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
  channel_id  UUID NOT NULL REFERENCES channels(id) ON DELETE CASCADE,
  event_type  TEXT NOT NULL,
  actor_id    TEXT NOT NULL,
  target_id   TEXT NULL,
  metadata    JSONB NULL,
  created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  CONSTRAINT channel_events_type_check CHECK (
    event_type IN (
      'channel.created', 'channel.updated', 'channel.archived',
      'member.joined', 'member.left', 'member.invited', 'member.kicked',
      'member.role_changed', 'message.pinned', 'message.unpinned'
    )
  )
);
CREATE INDEX channel_events_channel_idx ON channel_events(channel_id, created_at DESC);
CREATE INDEX channel_events_type_idx ON channel_events(event_type);

CREATE OR REPLACE FUNCTION update_updated_at() RETURNS TRIGGER AS $$
BEGIN
  NEW.updated_at = now();
  RETURN NEW;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER channels_updated_at BEFORE UPDATE ON channels
  FOR EACH ROW EXECUTE FUNCTION update_updated_at();
