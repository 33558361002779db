import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { MICRODAO_ID_PATTERN } from "../../domain/ids.ts";
import { SPACE_ORDER_PATTERN } from "../../domain/spaces.ts";
import { Visibility } from "../../wire/views.ts";

const Order = t.String({
  pattern: SPACE_ORDER_PATTERN,
  description: "The m.space.child `order`: 1 to 50 printable ASCII characters (0x20–0x7E), compared lexicographically.",
  examples: ["a", "m", "2026-12-02T04:25:06.123Z"],
});

export const MicrodaoParams = t.Object({ id: t.String({ pattern: MICRODAO_ID_PATTERN, examples: ["microdao:daarion"] }) });
export const GroupParams = t.Object({ id: t.String({ pattern: MICRODAO_ID_PATTERN }), gid: t.String({ format: "uuid" }) });
export const SpaceChannelParams = t.Object({ id: t.String({ pattern: MICRODAO_ID_PATTERN }), channel_id: t.String({ format: "uuid" }) });

export const SpaceChannelView = t.Object({
  id: t.String({ format: "uuid" }),
  slug: t.String(),
  name: t.String(),
  visibility: Visibility,
  matrix_room_id: t.String(),
  group_id: t.Nullable(t.String({ format: "uuid" })),
  order: t.String(),
  advertised: t.Boolean({ description: "Whether the space (or its group) lists it as an m.space.child: public and microdao channels are, private ones are not." }),
});
export type SpaceChannelView = Static<typeof SpaceChannelView>;

export const SpaceGroupView = t.Object({
  id: t.String({ format: "uuid" }),
  microdao_id: t.String(),
  name: t.String(),
  order: t.String(),
  matrix_room_id: t.Nullable(t.String({ description: "The sub-space's room; null until it is made." })),
  matrix_alias: t.String(),
  created_by: t.String(),
  created_at: t.String({ format: "date-time" }),
  updated_at: t.String({ format: "date-time" }),
  channels: t.Array(SpaceChannelView, { description: "In the group's m.space.child order." }),
});
export type SpaceGroupView = Static<typeof SpaceGroupView>;

export const ForeignChildView = t.Object({
  room_id: t.String(),
  parent_room_id: t.String({ description: "The space (or group) room holding the m.space.child." }),
  order: t.Nullable(t.String()),
  via: t.Array(t.String()),
  added_by: t.String({ description: "The Matrix user who sent the m.space.child." }),
});

export const SpaceView = t.Object({
  microdao_id: t.String(),
  name: t.String(),
  matrix_room_id: t.String(),
  matrix_alias: t.String(),
  groups: t.Array(SpaceGroupView, { description: "The channel groups (sub-spaces), in order." }),
  channels: t.Array(SpaceChannelView, { description: "The channels in no group that the caller may see, in the space's order." }),
  foreign_children: t.Array(ForeignChildView, {
    description: "Rooms a Matrix user made children of the space or a group that are not channels: reported, never indexed.",
  }),
});
export type SpaceView = Static<typeof SpaceView>;

export const CreateGroupBody = t.Object(
  { name: t.String({ minLength: 1, maxLength: 255 }), order: t.Optional(Order) },
  { additionalProperties: false },
);
export type CreateGroupBody = Static<typeof CreateGroupBody>;

export const UpdateGroupBody = t.Object(
  { name: t.Optional(t.String({ minLength: 1, maxLength: 255 })), order: t.Optional(Order) },
  { additionalProperties: false, minProperties: 1 },
);
export type UpdateGroupBody = Static<typeof UpdateGroupBody>;

export const PlaceChannelBody = t.Object(
  {
    group_id: t.Optional(t.Nullable(t.String({ format: "uuid", description: "The group to move the channel into; null: the space itself." }))),
    order: t.Optional(Order),
  },
  { additionalProperties: false, minProperties: 1 },
);
export type PlaceChannelBody = Static<typeof PlaceChannelBody>;
