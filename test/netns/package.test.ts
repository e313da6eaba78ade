/**
 * The Debian package (scripts/package.sh, `npm run package`): built once here (or
 * MINTUN_DEB=path reuses a build), checked with dpkg-deb --info/--contents, installed
 * with the real dpkg into an isolated root (`dpkg --root` with its own database and
 * log: nothing on the host changes; --force-depends since that root has no nodejs,
 * whose presence on the host is checked instead), then the README walkthrough
 * (walkthrough.ts) runs against the installed binaries: the host shells start in
 * ROOT/usr, so the README's `export PATH="$PWD/bin:$PATH"` names the package's bin/,
 * and ROOT/usr/sbin (mintund) is first on PATH. No repository file is on PATH.
 */
import { execFile, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HOSTS, REPO, Walkthrough } from "./walkthrough.js";

const BUILD_MS = 300_000;

function run(cmd: string, args: string[], timeout = 60_000): string {
  const r = spawnSync(cmd, args, { encoding: "utf8", timeout, cwd: REPO });
  if (r.status !== 0)
    throw new Error(
      `${cmd} ${args.join(" ")}: ${r.error?.message ?? `exit ${r.status}`}\n${r.stdout}${r.stderr}`,
    );
  return r.stdout;
}

/**
 * The package build, without blocking the test worker's event loop: a minute or more of
 * spawnSync under load starves vitest's worker RPC ("Timeout calling onTaskUpdate").
 */
function runAsync(cmd: string, args: string[], timeout: number): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { encoding: "utf8", timeout, cwd: REPO, maxBuffer: 64 << 20 }, (e, stdout, stderr) =>
      e ? reject(new Error(`${cmd} ${args.join(" ")}: ${e.message}\n${stdout}${stderr}`)) : resolve(stdout),
    ),
  );
}

/** The npm packages a production install has: package-lock.json entries that are not dev-only. */
function prodPackages(): string[] {
  const lock = JSON.parse(fs.readFileSync(path.join(REPO, "package-lock.json"), "utf8")) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([k, v]) => k && !v.dev && !v.devOptional)
    .map(([k]) => k);
}

describe.skipIf(process.getuid?.() !== 0)(
  "Debian package: build, install into a root, README walkthrough",
  () => {
    let tmp = "";
    let deb = "";
    let root = "";
    const w = new Walkthrough();

    beforeAll(async () => {
      tmp = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-pkgtest-"));
      deb =
        process.env.MINTUN_DEB ??
        (await runAsync("bash", ["scripts/package.sh", tmp], BUILD_MS)).trim().split("\n").pop()!;
      root = path.join(tmp, "root");
      fs.mkdirSync(path.join(root, "var/lib/dpkg/info"), { recursive: true });
      fs.mkdirSync(path.join(root, "var/lib/dpkg/updates"), { recursive: true });
      fs.mkdirSync(path.join(root, "var/log"), { recursive: true });
      fs.writeFileSync(path.join(root, "var/lib/dpkg/status"), "");
      run("dpkg", [`--root=${root}`, `--log=${root}/var/log/dpkg.log`, "--force-depends", "-i", deb]);
      await w.start({ cwd: path.join(root, "usr"), pathPrefix: [path.join(root, "usr/sbin")] });
    }, BUILD_MS + 60_000);

    afterAll(async () => {
      await w.stop();
      if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
    }, 30_000);

    it("has the control fields, units, conffiles and production dependencies only", () => {
      const info = run("dpkg-deb", ["--info", deb]);
      expect(path.basename(deb)).toMatch(/^mintun_\d+\.\d+\.\d+_[a-z0-9]+\.deb$/);
      expect(info).toMatch(/^ Package: mintun$/m);
      expect(info).toMatch(/^ Depends: nodejs \(>= 20\)/m);
      const size = Number(/^ Installed-Size: (\d+)$/m.exec(info)?.[1]);
      expect(size).toBeGreaterThan(1000);
      expect(size).toBeLessThan(40_000); // KiB; the repository's node_modules is ~150 MB
      // the host satisfies Depends (the isolated root's database cannot)
      const node = run("dpkg-query", ["-W", "-f=${Version}", "nodejs"]);
      expect(spawnSync("dpkg", ["--compare-versions", node, "ge", "20"]).status).toBe(0);

      const files = run("dpkg-deb", ["--contents", deb])
        .split("\n")
        .map((l) => l.split(/\s+/).slice(5).join(" ").replace(/^\.\//, "/"));
      for (const f of [
        "/usr/bin/mintun",
        "/usr/sbin/mintund",
        "/usr/lib/mintun/cli/mintun.cjs",
        "/usr/lib/mintun/daemon/mintund.js",
        "/usr/lib/mintun/mintun_linux.node",
        "/usr/lib/systemd/system/mintund.service",
        "/usr/lib/systemd/system/mintund@.service",
        "/etc/mintun/mintund.yaml.example",
        "/usr/share/doc/mintun/copyright",
      ])
        expect(files).toContain(f);
      // npm packages shipped = the lock's production entries (minus type declarations), no dev tool
      const shipped = new Set(
        files.flatMap((f) => {
          const m = /^\/usr\/lib\/mintun\/(.*node_modules\/(?:@[^/]+\/)?[^/]+)\/package\.json$/.exec(f);
          return m ? [m[1]!] : [];
        }),
      );
      const prod = prodPackages().filter((p) => !/node_modules\/(@types\/|undici-types$)/.test(p));
      expect([...shipped].sort()).toEqual(prod.filter((p) => fs.existsSync(path.join(REPO, p))).sort());
      for (const dev of ["esbuild", "typescript", "vitest", "eslint", "node-gyp", "playwright-core"])
        expect(shipped.has(`node_modules/${dev}`)).toBe(false);
      // sodium-native with this machine's prebuild only
      const prebuilds = new Set(
        files.flatMap((f) => /sodium-native\/prebuilds\/([^/]+)\//.exec(f)?.slice(1) ?? []),
      );
      expect([...prebuilds]).toEqual([`linux-${process.arch}`]);

      // installed by dpkg: the units run the packaged wrappers, the conffile is registered
      const unit = fs.readFileSync(path.join(root, "usr/lib/systemd/system/mintund.service"), "utf8");
      expect(unit).toMatch(/^ExecStart=\/usr\/sbin\/mintund --config \/etc\/mintun\/mintund.yaml$/m);
      expect(unit).toMatch(/^ExecStartPre=\/usr\/bin\/mintun check-config /m);
      expect(unit).not.toContain("/opt/mintun");
      const status = run("dpkg", [`--root=${root}`, "-s", "mintun"]);
      expect(status).toMatch(/^Status: install ok installed$/m);
      expect(status).toMatch(/^ \/etc\/mintun\/mintund.yaml.example [0-9a-f]{32}$/m);
      expect((fs.statSync(path.join(root, "etc/mintun")).mode & 0o777).toString(8)).toBe("750");
    });

    it("mintun and mintund run from the installed tree: --help, --version, check-config", () => {
      const version = (
        JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")) as { version: string }
      ).version;
      const mintun = path.join(root, "usr/bin/mintun");
      const mintund = path.join(root, "usr/sbin/mintund");
      // an environment without the repository: PATH to the system's node only, cwd in the root
      const env = { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" };
      const exec = (f: string, args: string[]) =>
        spawnSync(f, args, { encoding: "utf8", env, cwd: root, timeout: 30_000 });
      const help = exec(mintun, ["--help"]);
      expect(help.status).toBe(0);
      expect(help.stdout).toMatch(/^usage: mintun /m);
      expect(help.stdout).toMatch(/\bstatus\b/);
      const dhelp = exec(mintund, ["--help"]);
      expect(dhelp.status).toBe(0);
      expect(dhelp.stdout).toMatch(/^usage: mintund /m);
      expect(exec(mintun, ["--version"]).stdout).toContain(`mintun ${version}`);
      expect(exec(mintund, ["--version"]).stdout).toContain(`mintund ${version}`);
      // `mintun install` from the package: nothing to do, and it says why (before: "dist is missing: run npm ci")
      const inst = exec(mintun, ["install"]);
      expect(inst.status).toBe(0);
      expect(inst.stdout).toMatch(
        /^nothing to install: this mintun was installed by the Debian package 'mintun'/,
      );
      expect(inst.stdout).toContain("systemctl daemon-reload && systemctl enable --now mintund");
      expect(inst.stdout + inst.stderr).not.toMatch(/npm ci|missing/);
      const staged = exec(mintun, ["install", "--root", path.join(tmp, "stage")]);
      expect(staged.status).toBe(1);
      expect(staged.stderr).toMatch(/Debian package's \(\/usr\/lib\/mintun\): it cannot be copied/);
      expect(fs.existsSync(path.join(tmp, "stage"))).toBe(false);
      // the packaged example config is refused only for what an operator must fill in (key files)
      const cc = exec(mintun, ["check-config", path.join(root, "etc/mintun/mintund.yaml.example")]);
      expect(cc.stdout + cc.stderr).not.toMatch(/Cannot find module|ERR_MODULE_NOT_FOUND|ENATIVE/);
    });

    it("runs README 'Using it' with the installed binaries: ping, curl by name, status", async () => {
      await w.runReadme();
      for (const h of HOSTS) {
        const which = (await w.sh[h].run("command -v mintun mintund")).trim().split("\n");
        expect(which).toEqual([path.join(root, "usr/bin/mintun"), path.join(root, "usr/sbin/mintund")]);
      }
      // the daemons that answered are the package's bundle (the wrapper execs node on it)
      for (const h of HOSTS) {
        const cmdlines = [...w.sh[h].jobs].map((pid) => {
          try {
            return fs.readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ");
          } catch {
            return "";
          }
        });
        expect(cmdlines.some((c) => c.includes(`${root}/usr/sbin/../lib/mintun/daemon/mintund.js`))).toBe(
          true,
        );
      }
    }, 120_000);
  },
);
