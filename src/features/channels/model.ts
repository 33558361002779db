import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import type { ChannelRow } from "../../store/rows.ts";
import { MICRODAO_ID_PATTERN } from "../../domain/ids.ts";

export const Visibility = t.Union([t.Literal("public"), t.Literal("private"), t.Literal("microdao")]);
export const SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{0,99}$";

export const ChannelIdParams = t.Object({ id: t.String({ format: "uuid" }) });

export const ChannelView = t.Object({
  id: t.String({ format: "uuid" }),
  slug: t.String(),
  name: t.String(),
  description: t.Nullable(t.String()),
  topic: t.Nullable(t.String()),
  microdao_id: t.String(),
  matrix_room_id: t.String({ examples: ["!abc:daarion.city"] }),
  matrix_alias: t.Nullable(t.String({ examples: ["#general-daarion:daarion.city"] })),
  visibility: Visibility,
  is_direct: t.Boolean(),
  is_encrypted: t.Boolean(),
  created_by: t.String(),
  created_at: t.String({ format: "date-time" }),
  updated_at: t.String({ format: "date-time" }),
  unread_count: t.Optional(
    t.Integer({ description: "In the listing: others' messages after the caller's read position (0 if not a member)" }),
  ),
  archived_at: t.Nullable(t.String({ format: "date-time" })),
});
export type ChannelView = Static<typeof ChannelView>;

export const CreateChannelBody = t.Object(
  {
    slug: t.String({ pattern: SLUG_PATTERN, description: "Lower-case letters, digits and dashes; unique within the microDAO." }),
    name: t.String({ minLength: 1, maxLength: 255 }),
    description: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
    topic: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
    microdao_id: t.String({ pattern: MICRODAO_ID_PATTERN, examples: ["microdao:daarion"] }),
    visibility: t.Optional(t.Union([t.Literal("public"), t.Literal("private"), t.Literal("microdao")], { default: "microdao" })),
    is_encrypted: t.Optional(t.Boolean({ default: false })),
  },
  { additionalProperties: false },
);
export type CreateChannelBody = Static<typeof CreateChannelBody>;

export const UpdateChannelBody = t.Object(
  {
    name: t.Optional(t.String({ minLength: 1, maxLength: 255 })),
    description: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
    topic: t.Optional(t.Nullable(t.String({ maxLength: 2000 }))),
    visibility: t.Optional(Visibility),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateChannelBody = Static<typeof UpdateChannelBody>;

export const ListChannelsQuery = t.Object({
  microdao_id: t.Optional(t.String({ pattern: MICRODAO_ID_PATTERN })),
  include_archived: t.Optional(t.Boolean({ default: false, description: "Archived channels are hidden unless this is true." })),
});

export function toChannelView(row: ChannelRow): ChannelView {
  return {
    id: row.id,
    slug: row.slug,
    name: row.name,
    description: row.description,
    topic: row.topic,
    microdao_id: row.microdao_id,
    matrix_room_id: row.matrix_room_id,
    matrix_alias: row.matrix_alias,
    visibility: row.visibility,
    is_direct: row.is_direct,
    is_encrypted: row.is_encrypted,
    created_by: row.created_by,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    archived_at: row.archived_at?.toISOString() ?? null,
  };
}
