-- A microDAO is a Matrix space (issue 16, item 1). Matrix rooms are the truth for Element; the
-- index keeps the space's room, its channel groups (sub-spaces) and where each channel sits.

-- The microDAO's space room. Written before the room is made (matrix_room_id null), so that a
-- creation cut short is finished by the next attempt: the room is found again by its alias, which
-- only the service's space user makes. `claimed_at` marks an attempt under way (cluster mode: one
-- instance makes the room; a claim older than 30 s is taken over).
CREATE TABLE microdao_spaces (
  microdao_id     TEXT PRIMARY KEY,
  matrix_room_id  TEXT UNIQUE,
  matrix_alias    TEXT NOT NULL,
  name            TEXT NOT NULL,
  claimed_at      TIMESTAMPTZ,
  -- The m.room.join_rules content last written to the room (JSON text), so a sync writes only a change.
  written_join_rule TEXT,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A channel group: a sub-space, child of the microDAO's space, with its m.space.child `order`.
CREATE TABLE space_groups (
  id              UUID PRIMARY KEY,
  microdao_id     TEXT NOT NULL REFERENCES microdao_spaces (microdao_id),
  name            TEXT NOT NULL,
  space_order     TEXT NOT NULL,
  matrix_room_id  TEXT UNIQUE,
  matrix_alias    TEXT NOT NULL,
  -- What was last written to Matrix: its order in the space's m.space.child, its m.space.parent
  -- and its join rule (null: not yet).
  written_order   TEXT,
  written_parent  BOOLEAN NOT NULL DEFAULT false,
  written_join_rule TEXT,
  created_by      TEXT NOT NULL,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX space_groups_microdao ON space_groups (microdao_id);

-- Where a channel sits in its microDAO's space: its group (null: the space itself), its order,
-- and what was last written to Matrix, so a sync writes only what changed: the space (or group)
-- room holding its m.space.child with that order ('' when none does), and the parent its room's
-- m.space.parent names ('' when none).
CREATE TABLE space_channels (
  channel_id      UUID PRIMARY KEY REFERENCES channels (id),
  microdao_id     TEXT NOT NULL,
  group_id        UUID REFERENCES space_groups (id),
  space_order     TEXT NOT NULL,
  written_child   TEXT,
  written_order   TEXT,
  written_parent  TEXT
);
CREATE INDEX space_channels_microdao ON space_channels (microdao_id);
