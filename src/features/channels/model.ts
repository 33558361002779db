import { t } from "elysia";
import type { Static } from "@sinclair/typebox";
import { Visibility } from "../../wire/views.ts";
import { MICRODAO_ID_PATTERN } from "../../domain/ids.ts";

export { Visibility };
export { ChannelView } from "../../wire/views.ts";
export { toChannelView } from "../../store/views.ts";
export const SLUG_PATTERN = "^[a-z0-9][a-z0-9-]{0,99}$";

export const ChannelIdParams = t.Object({ id: t.String({ format: "uuid" }) });

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

