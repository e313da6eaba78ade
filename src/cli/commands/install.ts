/**
 * `mintun install`: put a built mintun tree under PREFIX (default /opt/mintun),
 * the systemd units into /etc/systemd/system (ExecStart pointing at this node
 * and PREFIX), a config skeleton (never overwritten) and the config and state
 * directories. `--dry-run` prints the plan; `--root DIR` stages everything
 * under DIR (packaging, tests). It does not start anything: the next steps
 * are printed.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { MintunError, UsageError } from "../../errors.js";
import { resolvePath, type Command, type Io } from "../cli.js";
import type { ParsedArgs } from "../args.js";
import { packageRoot, packaging } from "../../version.js";

export interface Action {
  kind: "mkdir" | "copy" | "write" | "symlink";
  /** destination (already under root) */
  path: string;
  mode?: number;
  from?: string;
  content?: string;
  /** skip if the destination exists (config files the operator edits) */
  keep?: boolean;
}

export interface InstallOptions {
  /** the built source tree (package.json, bin/, dist/, node_modules/, platform/linux/build/) */
  source: string;
  prefix: string;
  root: string;
  node: string;
}

/** Where `mintun install` puts the program unless --prefix says otherwise. */
const DEFAULT_PREFIX = "/opt/mintun";

/** What the application tree consists of, relative to the source. */
const APP_PARTS = [
  "package.json",
  "bin",
  "dist",
  "node_modules",
  "platform/linux/build/Release/mintun_linux.node",
  "config",
  "systemd",
  "docs",
  "README.md",
];

/** Rewrites the shipped unit's ExecStart/ExecStartPre for this node binary and prefix. */
export function rewriteUnit(text: string, node: string, prefix: string): string {
  return text
    .split("\n")
    .map((l) =>
      /^(ExecStart|ExecStartPre)=/.test(l) || l.startsWith("Documentation=")
        ? l.replaceAll("/usr/bin/node", node).replaceAll("/opt/mintun", prefix)
        : l,
    )
    .join("\n");
}

export function installPlan(o: InstallOptions): Action[] {
  const under = (p: string) => path.join(o.root, p);
  const a: Action[] = [];
  const prefix = path.resolve(o.prefix);
  if (path.resolve(o.source) !== prefix || o.root !== "/") {
    a.push({ kind: "mkdir", path: under(prefix), mode: 0o755 });
    for (const part of APP_PARTS) {
      const from = path.join(o.source, part);
      if (!fs.existsSync(from)) {
        if (
          part === "node_modules" ||
          part === "dist" ||
          part === "platform/linux/build/Release/mintun_linux.node"
        )
          throw new MintunError("ENOTBUILT", `${from} is missing: run 'npm ci && npm run build' first`);
        continue;
      }
      a.push({ kind: "copy", from, path: under(path.join(prefix, part)) });
    }
  }
  a.push({ kind: "mkdir", path: under("/etc/systemd/system"), mode: 0o755 });
  for (const unit of ["mintund.service", "mintund@.service"]) {
    const text = fs.readFileSync(path.join(o.source, "systemd", unit), "utf8");
    a.push({
      kind: "write",
      path: under(`/etc/systemd/system/${unit}`),
      mode: 0o644,
      content: rewriteUnit(text, o.node, prefix),
    });
  }
  a.push({ kind: "mkdir", path: under("/etc/mintun"), mode: 0o750 });
  a.push({
    kind: "write",
    path: under("/etc/mintun/mintund.yaml"),
    mode: 0o640,
    content: fs.readFileSync(path.join(o.source, "config", "host.yaml"), "utf8"),
    keep: true,
  });
  a.push({ kind: "mkdir", path: under("/var/lib/mintun"), mode: 0o700 });
  a.push({ kind: "mkdir", path: under("/usr/local/bin"), mode: 0o755 });
  for (const b of ["mintun", "mintund"])
    a.push({ kind: "symlink", from: path.join(prefix, "bin", b), path: under(`/usr/local/bin/${b}`) });
  return a;
}

function describe(x: Action): string {
  const m = x.mode !== undefined ? ` (mode ${x.mode.toString(8).padStart(4, "0")})` : "";
  switch (x.kind) {
    case "mkdir":
      return `mkdir -p ${x.path}${m}`;
    case "copy":
      return `copy ${x.from} -> ${x.path}`;
    case "write":
      return `write ${x.path}${m}${x.keep ? " unless it exists" : ""}`;
    case "symlink":
      return `symlink ${x.path} -> ${x.from}`;
  }
}

export function applyAction(x: Action): string {
  switch (x.kind) {
    case "mkdir":
      fs.mkdirSync(x.path, { recursive: true, mode: x.mode });
      if (x.mode !== undefined) fs.chmodSync(x.path, x.mode);
      return describe(x);
    case "copy":
      fs.mkdirSync(path.dirname(x.path), { recursive: true });
      fs.rmSync(x.path, { recursive: true, force: true });
      fs.cpSync(x.from!, x.path, { recursive: true, dereference: false, verbatimSymlinks: true });
      return describe(x);
    case "write":
      if (x.keep && fs.existsSync(x.path)) return `keep ${x.path} (exists)`;
      fs.mkdirSync(path.dirname(x.path), { recursive: true });
      fs.writeFileSync(x.path, x.content!, { mode: x.mode });
      if (x.mode !== undefined) fs.chmodSync(x.path, x.mode);
      return describe(x);
    case "symlink":
      fs.rmSync(x.path, { force: true });
      fs.symlinkSync(x.from!, x.path);
      return describe(x);
  }
}

export const install: Command = {
  path: ["install"],
  summary: "install mintun under a prefix with its systemd units, a config skeleton and state directories",
  description:
    "Copies the built tree (run 'npm ci && npm run build' first) to PREFIX, writes\n" +
    "/etc/systemd/system/mintund.service and mintund@.service, /etc/mintun/mintund.yaml\n" +
    "(only if absent), /var/lib/mintun and /usr/local/bin/{mintun,mintund} links.\n" +
    "Upgrading is the same command: units and the tree are replaced, the config is kept.",
  flags: [
    {
      name: "prefix",
      type: "string",
      metavar: "DIR",
      default: DEFAULT_PREFIX,
      help: "where the program goes",
    },
    { name: "root", type: "string", metavar: "DIR", default: "/", help: "stage everything under DIR" },
    { name: "node", type: "string", metavar: "PATH", help: "node binary for ExecStart (default: this one)" },
    { name: "dry-run", type: "boolean", help: "print what would be done and change nothing" },
    { name: "json", type: "boolean", help: "print the actions (done, or planned with --dry-run) as JSON" },
  ],
  run(args, io) {
    const prefix = args.string("prefix")!;
    if (!path.isAbsolute(prefix)) throw new UsageError(`--prefix must be an absolute path, got '${prefix}'`);
    if (packaging(import.meta.url) === "deb") return debianInstalled(args, io, prefix);
    const source = packageRoot(import.meta.url);
    if (!source)
      throw new MintunError("ENOSOURCE", "cannot find the mintun tree (package.json) this command runs from");
    const plan = installPlan({
      source,
      prefix,
      root: resolvePath(io, args.string("root")!),
      node: args.string("node") ?? process.execPath,
    });
    const dry = args.bool("dry-run");
    if (args.bool("json")) {
      const done = plan.map((x) => ({
        kind: x.kind,
        path: x.path,
        ...(x.from ? { from: x.from } : {}),
        ...(x.mode !== undefined ? { mode: x.mode.toString(8).padStart(4, "0") } : {}),
        result: dry ? "planned" : applyAction(x),
      }));
      io.stdout(JSON.stringify({ dryRun: dry, prefix, actions: done }, null, 2) + "\n");
      return;
    }
    for (const x of plan) io.stdout(`${dry ? "would " : ""}${dry ? describe(x) : applyAction(x)}\n`);
    io.stdout(
      `${dry ? "dry run: nothing changed. " : ""}next: create keys and certificates (docs/OPERATIONS.md), edit ` +
        `/etc/mintun/mintund.yaml, 'mintun check-config /etc/mintun/mintund.yaml', then\n` +
        `  systemctl daemon-reload && systemctl enable --now mintund\n`,
    );
  },
};

/**
 * `mintun install` run from the Debian package: dpkg already did what it does (program,
 * units, /etc/mintun, the state directory on first start), so there is nothing to copy; say
 * so and give the next steps. Staging elsewhere (--root, --prefix) needs a source tree.
 */
function debianInstalled(args: ParsedArgs, io: Io, prefix: string): void {
  if (args.string("root") !== "/" || prefix !== DEFAULT_PREFIX)
    throw new MintunError(
      "EPACKAGED",
      "this mintun is the Debian package's (/usr/lib/mintun): it cannot be copied elsewhere with " +
        "--root or --prefix; run 'mintun install' from a built source tree for that",
    );
  if (args.bool("json")) {
    io.stdout(
      JSON.stringify({ dryRun: args.bool("dry-run"), packaging: "deb", actions: [] }, null, 2) + "\n",
    );
    return;
  }
  io.stdout(
    "nothing to install: this mintun was installed by the Debian package 'mintun' (dpkg -L mintun lists\n" +
      "its files): the program is in /usr/lib/mintun, mintun and mintund in /usr/bin and /usr/sbin,\n" +
      "the units in /usr/lib/systemd/system. Next: keys and certificates (docs/OPERATIONS.md), then\n" +
      "  cp /etc/mintun/mintund.yaml.example /etc/mintun/mintund.yaml   # and edit it\n" +
      "  mintun check-config /etc/mintun/mintund.yaml\n" +
      "  systemctl daemon-reload && systemctl enable --now mintund\n",
  );
}
