/**
 * The architecture of src/, checked by test/system/architecture.test.ts (README "Architecture").
 * Imports point down one order; type-only imports count like any other.
 */

// Top to bottom. A module may import from its own layer and the layers below it, never above.
const LAYERS = [
  ["app", ["^src/(main|app)[.]ts$", "^src/lifecycle/stack[.]ts$", "^src/demo/", "^src/realtime-docs/"]],
  ["cluster", ["^src/cluster/"]],
  ["inbound and realtime", ["^src/(inbound|realtime)/"]],
  ["features", ["^src/features/", "^src/http/"]],
  ["access", ["^src/access/"]],
  ["channel", ["^src/channel/"]],
  ["ports", ["^src/(matrix|events)/"]],
  ["store", ["^src/store/"]],
  [
    "wire and domain",
    ["^src/(wire|domain|metrics)/", "^src/(errors|log|config|backoff|deadline|request-context)[.]ts$", "^src/lifecycle/(live|data-dir-lock|startup)[.]ts$"],
  ],
];

const layerRules = LAYERS.slice(1).map(([name, paths], i) => ({
  name: `layer-${name.replaceAll(" ", "-")}`,
  comment: `${name} imports only from its own layer and below`,
  severity: "error",
  from: { path: paths },
  to: { path: LAYERS.slice(0, i + 1).flatMap(([, above]) => above) },
}));

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: "no-circular",
      comment: "no import cycle in src/, type-only imports included",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
    {
      name: "every-module-has-a-layer",
      comment: "a new folder in src/ gets its place in LAYERS",
      severity: "error",
      from: { path: "^src/", pathNot: LAYERS.flatMap(([, paths]) => paths) },
      to: {},
    },
    ...layerRules,
    {
      name: "channel-imports-no-feature",
      severity: "error",
      from: { path: "^src/channel/" },
      to: { path: "^src/features/" },
    },
    {
      name: "store-imports-no-port-or-caller",
      severity: "error",
      from: { path: "^src/store/" },
      to: { path: "^src/(matrix|events|features|http|realtime|inbound|channel|access)/" },
    },
    {
      name: "domain-and-wire-are-pure",
      comment: "pure rules and shapes: each other and the error type only",
      severity: "error",
      from: { path: "^src/(domain|wire)/" },
      to: { path: "^src/", pathNot: ["^src/(domain|wire)/", "^src/errors[.]ts$"] },
    },
    {
      name: "matrix-adapters-stay-adapters",
      comment: "the Matrix port and adapters: domain, wire, the base utilities, and the store's Sql and group commit for the local backend's own tables",
      severity: "error",
      from: { path: "^src/matrix/" },
      to: {
        path: "^src/",
        pathNot: ["^src/(matrix|domain|wire)/", "^src/(errors|log|backoff|deadline)[.]ts$", "^src/store/(db|group-commit)[.]ts$"],
      },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    // The project's TypeScript (7) has no compiler API yet; swc parses the sources and keeps type-only imports.
    parser: "swc",
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
  },
};
