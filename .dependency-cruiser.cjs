/**
 * Layers of src/ (docs/ARCHITECTURE.md "Layers"): each folder may import only folders
 * below it, never above; the protocol core does no I/O. Checked by `npm run lint`
 * (`depcruise src`), and so by .ci/run.
 *
 *   14 cli                                  the command line
 *   13 daemon                               composes everything, owns the process
 *   12 api gateway                          local API, site gateway
 *   11 net                                  OS I/O: TUN, UDP, routes, socket owners, addon
 *   10 directory                            directory client/server/stores
 *    9 store                                files: key files, user store, policy file
 *    8 config  log-pino.ts                  YAML config; the pino logger
 *    7 names                                overlay names and the DNS codec
 *  ---------------------------------------- protocol core: no I/O, no yaml/pino/dns-packet
 *    6 tunnel                               the engine
 *    5 conn                                 connections, user authentication, policy evaluation
 *    4 dos                                  puzzles, buckets, load meter
 *    3 wire                                 codecs of every wire format (certificates sign)
 *    2 crypto                               libsodium wrappers
 *    1 ip                                   IP addresses, prefixes, inner packet headers, rejects
 *    0 errors.ts text.ts log.ts types/      imported by all
 */
const LAYERS = [
  ["ip"],
  ["crypto"],
  ["wire"],
  ["dos"],
  ["conn"],
  ["tunnel"],
  ["names"],
  ["config", "log-pino\\.ts"],
  ["store"],
  ["directory"],
  ["net"],
  ["api", "gateway"],
  ["daemon"],
  ["cli"],
];
const re = (names) => `^src/(${names.join("|")})(/|$)`;
const upward = LAYERS.slice(0, -1).map((names, i) => ({
  name: `layer-${names.join("-").replace(/\\/g, "")}-imports-upward`,
  comment: `${names.join(", ")} may import only layers below it (see .dependency-cruiser.cjs)`,
  severity: "error",
  from: { path: re(names) },
  to: { path: re(LAYERS.slice(i + 1).flat()) },
}));
const CORE = re(["ip", "wire", "crypto", "dos", "conn", "tunnel"]);

module.exports = {
  forbidden: [
    ...upward,
    {
      name: "base-imports-a-layer",
      comment: "errors.ts, text.ts and log.ts are imported by every layer and import none",
      severity: "error",
      from: { path: "^src/(errors|text|log)\\.ts$" },
      to: { path: "^src/[a-z]+/" },
    },
    {
      name: "core-does-io",
      comment: "the protocol core is driven by `now` and an output interface: no I/O modules",
      severity: "error",
      from: { path: CORE },
      to: {
        dependencyTypes: ["core"],
        path: "^(node:)?(fs|fs/promises|net|dgram|child_process|http|https|os|worker_threads)$",
      },
    },
    {
      name: "core-loads-config-stack",
      comment: "the engine loads without yaml, pino, dns-packet, etcd3 or prom-client",
      severity: "error",
      from: { path: CORE },
      to: { path: "node_modules/(yaml|pino|dns-packet|etcd3|prom-client)/" },
    },
    {
      name: "no-circular",
      comment: "no import cycle between files",
      severity: "error",
      from: { path: "^src/" },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: {
      exportsFields: ["exports"],
      conditionNames: ["import", "require", "node", "default"],
    },
  },
};
