import { describe, expect, test } from "bun:test";
import "@elysiajs/openapi";
import { t } from "elysia";
import { Value } from "@sinclair/typebox/value";
import { useFastFormats } from "../../src/http/formats.ts";

describe("the uuid format after @elysiajs/openapi is loaded", () => {
  useFastFormats();
  const Id = t.String({ format: "uuid" });

  test("accepts the canonical form in any case and of any version, as PostgreSQL does", () => {
    for (const id of ["0b6e1c8e-5d6f-4a3b-9c2d-1e0f2a3b4c5d", "0B6E1C8E-5D6F-4A3B-9C2D-1E0F2A3B4C5D", "00000000-0000-0000-0000-000000000000", "0b6e1c8e-5d6f-0a3b-0c2d-1e0f2a3b4c5d"]) {
      expect(Value.Check(Id, id)).toBe(true);
    }
  });

  test("rejects every other form", () => {
    for (const id of ["", "not-a-uuid", "urn:uuid:0b6e1c8e-5d6f-4a3b-9c2d-1e0f2a3b4c5d", "{0b6e1c8e-5d6f-4a3b-9c2d-1e0f2a3b4c5d}", "0b6e1c8e5d6f4a3b9c2d1e0f2a3b4c5d", "0b6e1c8e-5d6f-4a3b-9c2d-1e0f2a3b4c5d\n", "0b6e1c8e-5d6f-4a3b-9c2d-1e0f2a3b4c5g"]) {
      expect(Value.Check(Id, id)).toBe(false);
    }
  });
});
