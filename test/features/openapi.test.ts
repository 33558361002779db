import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { requireServices } from "../helpers/services.ts";
import { startTestServer, type TestServer } from "../helpers/server.ts";

/**
 * /docs/json held to the OpenAPI 3.1 specification by a real validator (openapi-spec-validator
 * from PyPI, installed into the git-ignored .fuzz/openapi-venv on first use, as scripts/fuzz.ts
 * does for Schemathesis), and to what clients need from it. Without Python the validator run
 * skips, except under REQUIRE_SERVICES=1 (CI), where it must run.
 */
setDefaultTimeout(30_000);

const root = join(import.meta.dir, "..", "..");
const venv = join(root, ".fuzz", "openapi-venv");
const validator = join(venv, "bin", "openapi-spec-validator");
const canValidate = existsSync(validator) || Bun.which("python3") !== null;

type Operation = {
  operationId?: string;
  tags?: string[];
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string }>;
  responses: Record<string, { headers?: Record<string, unknown>; content?: Record<string, { schema: unknown }> }>;
};
type Doc = {
  openapi: string;
  tags: Array<{ name: string }>;
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, unknown>; securitySchemes: Record<string, { type: string; scheme?: string; name?: string }> };
};

let server: TestServer;
let doc: Doc;
const operations = () => Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ path, method, op })));
const byId = (id: string) => operations().find((o) => o.op.operationId === id)!;

beforeAll(async () => {
  server = await startTestServer();
  doc = (await (await fetch(`${server.url}/docs/json`)).json()) as Doc;
});
afterAll(async () => {
  await server?.stop();
});

async function run(cmd: string[]): Promise<{ code: number; out: string }> {
  const proc = Bun.spawn(cmd, { cwd: root, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, out: out + err };
}

describe.skipIf(!requireServices && !canValidate)("OpenAPI validator", () => {
  test(
    "openapi-spec-validator finds no error in /docs/json",
    async () => {
      if (!existsSync(validator)) {
        expect((await run(["python3", "-m", "venv", venv])).code).toBe(0);
        const pip = await run([join(venv, "bin", "pip"), "install", "--quiet", "openapi-spec-validator"]);
        if (pip.code !== 0) console.error(pip.out);
        expect(pip.code).toBe(0);
      }
      const dir = mkdtempSync(join(tmpdir(), "openapi-"));
      try {
        const file = join(dir, "openapi.json");
        writeFileSync(file, JSON.stringify(doc));
        const result = await run([validator, file]);
        if (result.code !== 0) console.error(result.out.slice(0, 5000));
        expect(result.out).toContain(": OK");
        expect(result.code).toBe(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    180_000,
  );
});

describe("/docs/json says what clients need", () => {
  test("OpenAPI 3.1, with the views and the error body as reusable components", () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(doc.components.schemas)).toEqual(expect.arrayContaining(["Error", "Channel", "Message", "Member", "Pin"]));
    const created = byId("createChannel").op.responses["201"]!.content!["application/json"]!.schema;
    expect(created).toEqual({ $ref: "#/components/schemas/Channel" });
    expect(byId("listMessages").op.responses["200"]!.content!["application/json"]!.schema).toEqual({
      type: "array",
      items: { $ref: "#/components/schemas/Message" },
    });
    expect(byId("sendMessage").op.responses["403"]!.content!["application/json"]!.schema).toEqual({ $ref: "#/components/schemas/Error" });
  });

  test("credentials are security schemes, not header parameters", () => {
    const schemes = doc.components.securitySchemes;
    expect(schemes.bearerAuth).toMatchObject({ type: "http", scheme: "bearer" });
    expect(schemes.internalToken).toMatchObject({ type: "apiKey", name: "X-Internal-Service-Token" });
    expect(schemes.homeserverToken).toMatchObject({ type: "http", scheme: "bearer" });
    expect(byId("sendMessage").op.security).toEqual([{ bearerAuth: [] }, { devUserId: [] }]);
    expect(byId("getChannelContext").op.security).toEqual([{ internalToken: [] }]);
    expect(byId("pushTransaction").op.security).toEqual([{ homeserverToken: [] }]);
    const credentialParams = operations().flatMap(({ op }) => (op.parameters ?? []).filter((p) => p.in === "header" && /^(authorization|x-user-id|x-internal-service-token)$/.test(p.name)));
    expect(credentialParams).toEqual([]);
  });

  test("readable, unique operation ids, and declared tags that are all used", () => {
    const ids = operations().map((o) => o.op.operationId);
    expect(ids.filter((id) => !id || !/^[a-z][A-Za-z]+$/.test(id))).toEqual([]);
    expect(new Set(ids).size).toBe(ids.length);
    expect(byId("listChannels")).toMatchObject({ method: "get", path: "/api/messaging/channels" });
    expect(byId("sendMessage")).toMatchObject({ method: "post", path: "/api/messaging/channels/{id}/messages" });
    expect(byId("postAsAgent")).toMatchObject({ method: "post", path: "/internal/agents/{agent_id}/post-to-channel" });
    const declared = doc.tags.map((t) => t.name).sort();
    const used = [...new Set(operations().flatMap((o) => o.op.tags ?? []))].sort();
    expect(used).toEqual(declared);
  });

  test("no trailing slashes, and Idempotency-Key on POST only", () => {
    expect(Object.keys(doc.paths).filter((p) => p !== "/" && p.endsWith("/"))).toEqual([]);
    const misplaced = operations().filter(({ method, op }) => method !== "post" && (op.parameters ?? []).some((p) => p.name === "idempotency-key"));
    expect(misplaced.map((o) => `${o.method} ${o.path}`)).toEqual([]);
    expect((byId("sendMessage").op.parameters ?? []).map((p) => p.name)).toContain("idempotency-key");
  });

  test("429 with Retry-After, 503, and the paging, rate-limit and replay headers", () => {
    const send = byId("sendMessage").op.responses;
    expect(Object.keys(send["429"]!.headers!)).toEqual(expect.arrayContaining(["Retry-After", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"]));
    expect(send["503"]).toBeDefined();
    expect(Object.keys(send["201"]!.headers!)).toEqual(expect.arrayContaining(["Idempotent-Replayed", "X-RateLimit-Remaining"]));
    expect(Object.keys(byId("listMessages").op.responses["200"]!.headers!)).toContain("X-Next-Cursor");
    expect(Object.keys(byId("searchMessages").op.responses["200"]!.headers!)).toContain("X-Next-Offset");
    expect(byId("listMessages").op.responses["200"]!.headers!["Idempotent-Replayed"]).toBeUndefined();
  });
});
