/**
 * The machinery of the README walkthrough tests (readme.test.ts: the built clone;
 * package.test.ts: the installed Debian package). README.md is read at run time,
 * the fenced ```sh blocks between `<!-- readme-test: begin -->` and
 * `<!-- readme-test: end -->` are extracted, and each runs as written on the
 * host(s) its first line names (`# on web`, `# on laptop`, `# on web and on
 * laptop`). README and test cannot drift: change a command there and this runs
 * the new one.
 *
 * Each host is a network namespace on one LAN (192.0.2.0/24: laptop .1, web .2,
 * the addresses the README uses) with ONE long-lived root bash, like a terminal
 * on that machine: `cd`, `export` and background jobs carry over between
 * blocks. So that the two hosts do not share files, each shell first gives
 * itself (in the private mount namespace `ip netns exec` creates) a copy-on-write
 * /etc and /var (overlayfs, upper layer in this test's temp dir) and an empty
 * /run; writes to /etc/mintun, /etc/resolv.conf, /var/lib/mintun and the API
 * socket stay on that host and vanish with it. The shells start in `cwd` (the
 * README's precondition: the built clone, whose bin/ its first block puts on PATH;
 * for the package, the installed tree's usr/, so that bin/ is the package's) with
 * `pathPrefix` before the system PATH.
 *
 * The README's web server serves /var/www (web's own copy), not /etc/mintun.
 *
 * The one emulated command is `scp` (no ssh server here): a shell function that
 * copies from/to the other host's mount namespace (nsenter -m into its shell)
 * with `scp [user@]IP:PATH LOCAL` / `scp LOCAL [user@]IP:PATH` semantics (a new file
 * gets the source's mode, as scp gives it).
 * A person waits until a daemon they started is up; the test does too: after a
 * block that starts `mintund`, it polls `mintun status` (bounded) on that host.
 *
 * Every block runs under `set -e`: a failing command ends that host's shell and
 * fails the test with the transcript. Background jobs (mintund, the web server)
 * are collected after each block with `jobs -p` and killed by PID at the end,
 * then the shells, namespaces and temp dir go.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { createLan, type Topology } from "./lib.js";

export const REPO = fileURLToPath(new URL("../..", import.meta.url));
export const README = path.join(REPO, "README.md");
const BEGIN = "<!-- readme-test: begin -->";
const END = "<!-- readme-test: end -->";
export const HOSTS = ["laptop", "web"] as const; // createLan order: laptop .1, web .2
export type HostName = (typeof HOSTS)[number];

export interface Block {
  hosts: HostName[];
  code: string;
}

/** The sh blocks of the walkthrough, with the hosts named on their first line. */
export function readmeBlocks(text: string): Block[] {
  const b = text.indexOf(BEGIN);
  const e = text.indexOf(END);
  if (b < 0 || e < b) throw new Error(`README.md: no ${BEGIN} ... ${END} section`);
  const section = text.slice(b + BEGIN.length, e);
  const blocks: Block[] = [];
  for (const m of section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)) {
    const code = m[1] ?? "";
    const first = code.split("\n")[0] ?? "";
    const on = /^# on ([^:]+)/.exec(first);
    if (!on) throw new Error(`README.md: block without a "# on HOST" first line: ${first}`);
    const hosts = HOSTS.filter((h) => new RegExp(`\\b${h}\\b`).test(on[1] ?? ""));
    if (hosts.length === 0) throw new Error(`README.md: block for unknown host(s): ${first}`);
    blocks.push({ hosts, code });
  }
  if (blocks.length === 0) throw new Error("README.md: no ```sh blocks in the walkthrough");
  return blocks;
}

/** One root bash per host, fed blocks on stdin; output collected with end markers. */
export class HostShell {
  private out = "";
  private exited: { code: number | null } | null = null;
  private seq = 0;
  readonly jobs = new Set<number>();

  constructor(
    readonly name: HostName,
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stdout.on("data", (d: Buffer) => (this.out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (this.out += d.toString()));
    child.on("exit", (code) => (this.exited = { code }));
  }

  get transcript(): string {
    return this.out;
  }

  /** Runs text in the shell; resolves with its output once the end marker appears. */
  async run(text: string, timeoutMs = 20_000): Promise<string> {
    const marker = `__READMETEST_DONE_${++this.seq}__`;
    const from = this.out.length;
    this.child.stdin.write(`${text}\necho; echo "${marker} $(jobs -p | tr '\\n' ' ')"\n`);
    const t0 = Date.now();
    for (;;) {
      const i = this.out.indexOf(marker, from);
      if (i >= 0) {
        const eol = this.out.indexOf("\n", i);
        if (eol >= 0) {
          for (const p of this.out
            .slice(i + marker.length, eol)
            .trim()
            .split(/\s+/))
            if (p) this.jobs.add(Number(p));
          return this.out.slice(from, i);
        }
      }
      if (this.exited)
        throw new Error(`${this.name}: shell exited (${this.exited.code}); output:\n${this.out.slice(from)}`);
      if (Date.now() - t0 > timeoutMs)
        throw new Error(`${this.name}: timeout; output:\n${this.out.slice(from)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
};

export async function killPid(pid: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  for (let i = 0; i < 60 && alive(pid); i++) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) process.kill(pid, "SIGKILL");
}

export interface WalkOptions {
  /** where each host's shell starts (the README's first block runs `export PATH="$PWD/bin:$PATH"`) */
  cwd: string;
  /** directories put before the system PATH in the shells' environment */
  pathPrefix?: string[];
}

/** Two hosts (namespaces with their own /etc, /var, /run and a root shell each) on one LAN. */
export class Walkthrough {
  topo!: Topology;
  work = "";
  readonly sh = {} as Record<HostName, HostShell>;
  readonly out: Record<HostName, string[]> = { laptop: [], web: [] };

  async start(opts: WalkOptions): Promise<void> {
    const topo = await createLan({ hosts: [...HOSTS], subnet4: "192.0.2.0/24", subnet6: "fd02::/64" });
    this.topo = topo;
    const sh = this.sh;
    const work = (this.work = fs.mkdtempSync(path.join(os.tmpdir(), "mintun-readme-")));
    const sysPath = process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin";
    for (const h of HOSTS) {
      const d = path.join(work, h);
      for (const sub of ["etc.up", "etc.wk", "var.up", "var.wk"])
        fs.mkdirSync(path.join(d, sub), { recursive: true });
      const child = spawn("ip", ["netns", "exec", topo.host(h).ns.name, "bash", "--noprofile", "--norc"], {
        cwd: opts.cwd,
        env: { PATH: [...(opts.pathPrefix ?? []), sysPath].join(":"), HOME: d, LANG: "C.UTF-8" },
        stdio: ["pipe", "pipe", "pipe"],
      });
      sh[h] = new HostShell(h, child);
      // this host's own /etc, /var and /run (see the header); not part of the README
      await sh[h].run(
        [
          `mount -t overlay overlay -o lowerdir=/etc,upperdir=${d}/etc.up,workdir=${d}/etc.wk /etc`,
          `mount -t overlay overlay -o lowerdir=/var,upperdir=${d}/var.up,workdir=${d}/var.wk /var`,
          // a resolv.conf symlink into /run (systemd-resolved) becomes this host's own file
          `{ [ ! -L /etc/resolv.conf ] || cp --remove-destination "$(readlink -f /etc/resolv.conf)" /etc/resolv.conf; }`,
          `mount -t tmpfs tmpfs /run`,
        ].join(" && "),
      );
    }
    // scp between the hosts (the only emulated command): [user@]IP:PATH names the other host
    const byIp = HOSTS.map((h) => `[${topo.host(h).addr4}]=${sh[h].child.pid}`).join(" ");
    const scp = `
declare -A READMETEST_HOSTS=(${byIp})
scp() {
  [ $# -eq 2 ] || { echo "scp (test emulation): SRC DST only" >&2; return 1; }
  local src=$1 dst=$2 h p pid
  if [[ $src == *:* ]]; then
    h=\${src%%:*}; h=\${h#*@}; p=\${src#*:}; pid=\${READMETEST_HOSTS[$h]:-}
    [ -n "$pid" ] || { echo "scp: unknown host $h" >&2; return 1; }
    [ -d "$dst" ] && dst=$dst/\${p##*/}
    (umask 077; nsenter -t "$pid" -m cat -- "$p" >"$dst") || return 1
    chmod "$(nsenter -t "$pid" -m stat -c %a -- "$p")" "$dst"
  elif [[ $dst == *:* ]]; then
    h=\${dst%%:*}; h=\${h#*@}; p=\${dst#*:}; pid=\${READMETEST_HOSTS[$h]:-}
    [ -n "$pid" ] || { echo "scp: unknown host $h" >&2; return 1; }
    nsenter -t "$pid" -m sh -c 'f=$1; [ -d "$f" ] && f=$f/$2; umask 077; cat >"$f" && chmod "$3" "$f"' sh "$p" "\${src##*/}" "$(stat -c %a -- "$src")" <"$src"
  else
    cp -- "$src" "$dst"
  fi
}`;
    for (const h of HOSTS) await sh[h].run(scp);
  }

  async stop(): Promise<void> {
    for (const h of HOSTS) {
      const s = this.sh[h];
      if (!s) continue;
      for (const pid of s.jobs) await killPid(pid);
      s.child.stdin.end();
      if (s.child.pid) await killPid(s.child.pid);
    }
    await this.topo?.cleanup();
    if (this.work) fs.rmSync(this.work, { recursive: true, force: true });
  }

  /** Every block of README "Using it" on its host(s), then the checks: ping, curl by name, status. */
  async runReadme(verbose = !!process.env.READMETEST_VERBOSE): Promise<void> {
    const { sh, out } = this;
    const blocks = readmeBlocks(fs.readFileSync(README, "utf8"));
    const t0 = Date.now();
    for (const [i, b] of blocks.entries()) {
      for (const h of b.hosts) {
        const s = sh[h];
        const o = await s.run(`set -e -o pipefail\n${b.code}\nset +e`, 30_000);
        out[h].push(o);
        if (/^\s*mintund\b/m.test(b.code)) {
          // wait, as a person would, until the daemon just started answers
          await s.run(
            "for i in $(seq 100); do mintun status >/dev/null 2>&1 && break; sleep 0.1; done; mintun status >/dev/null",
          );
        }
        if (verbose) console.log(`--- block ${i + 1} on ${h} (${Date.now() - t0} ms)\n${b.code}\n>>>\n${o}`);
      }
    }
    const laptop = out.laptop.join("\n");
    expect(laptop).toMatch(/ 0% packet loss/); // ping over the overlay
    // curl by name: the README's curl printed the page web serves
    const page = (await sh.web.run("cat /var/www/index.html")).trim();
    expect(page.length).toBeGreaterThan(0);
    expect(laptop).toContain(page);
    expect(out.laptop[out.laptop.length - 1] ?? "").toMatch(/\bweb\b/); // the last block ends in `mintun status`
    // the checks above see the README's output; these ask the daemons directly
    const st = JSON.parse(await sh.laptop.run("mintun status --json")) as { peers: { name: string }[] };
    expect(st.peers.map((p) => p.name)).toContain("web");
    const code = await sh.laptop.run("curl -s -o /dev/null -w '%{http_code}' http://web.mesh:8000/");
    expect(code.trim()).toBe("200");
    // web got one file and kept nothing else: its key is 0600 and the bundle is gone
    expect((await sh.web.run("stat -c %a /etc/mintun/host.key")).trim()).toBe("600");
    expect((await sh.web.run("ls /etc/mintun")).trim().split(/\s+/).sort()).toEqual(
      ["ca.crt", "host.crt", "host.key", "mintund.log", "mintund.yaml"].sort(),
    );
  }
}
