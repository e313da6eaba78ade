/**
 * The command table that `mintun` runs from: each command's words and summary here, its
 * module imported only when it runs or shows its help, so one call loads the code of one
 * command (docs/PERFORMANCE.md, "CLI start"). commands/index.ts is the same table with
 * the modules loaded (tests use it); test/unit/cli-habits.test.ts checks the two agree.
 */
import type { Command, LazyCommand } from "../cli.js";

const lazy = (path: string, summary: string, load: () => Promise<Command>): LazyCommand => ({
  path: path.split(" "),
  summary,
  load,
});

export const LAZY_COMMANDS: readonly LazyCommand[] = [
  lazy(
    "ca init",
    "create an organisation CA: DIR/ca.key (secret, 0600) and DIR/ca.crt",
    async () => (await import("./ca.js")).caInit,
  ),
  lazy(
    "ca sign-host",
    "issue a host certificate (or with --bundle an enrolment bundle)",
    async () => (await import("./ca.js")).caSignHost,
  ),
  lazy("ca sign-user", "issue a user certificate", async () => (await import("./ca.js")).caSignUser),
  lazy(
    "ca revoke",
    "revoke a host or user (its key or one certificate) in the CA's signed revocation list",
    async () => (await import("./revoke.js")).caRevoke,
  ),
  lazy(
    "keygen",
    "generate an Ed25519 key pair: FILE (secret, 0600) and its .pub",
    async () => (await import("./keys.js")).keygen,
  ),
  lazy(
    "pubkey",
    "print the public key (base64) of a secret key file",
    async () => (await import("./keys.js")).pubkey,
  ),
  lazy(
    "enrol",
    "install an enrolment bundle: DIR/host.key (0600), DIR/host.crt and DIR/ca.crt",
    async () => (await import("./enrol.js")).enrol,
  ),
  lazy(
    "cert show",
    "print a certificate; verify it against a CA with --ca",
    async () => (await import("./cert.js")).certShow,
  ),
  lazy(
    "status",
    "show the daemon's tunnels, peers, counters and last reload",
    async () => (await import("./status.js")).status,
  ),
  lazy(
    "peers",
    "list the daemon's peers: tunnel state, overlay addresses, endpoint, key, traffic",
    async () => (await import("./ops.js")).peers,
  ),
  lazy(
    "ping",
    "ping a peer over the overlay (by name or overlay address) and show the tunnel that carried it",
    async () => (await import("./ops.js")).ping,
  ),
  lazy(
    "whois",
    "who owns an overlay address, and with ADDR:PORT which host and user own that flow",
    async () => (await import("./ops.js")).whois,
  ),
  lazy(
    "reload",
    "make the daemon re-read its config (as SIGHUP does); needs root",
    async () => (await import("./ops.js")).reload,
  ),
  lazy(
    "resolve",
    "look a host up by name: overlay addresses, subnets, key fingerprint, record expiry",
    async () => (await import("./resolve.js")).resolve,
  ),
  lazy(
    "check-config",
    "validate a mintund config file (and the key and certificate files it names)",
    async () => (await import("./check-config.js")).checkConfig,
  ),
  lazy(
    "install",
    "install mintun under a prefix with its systemd units, a config skeleton and state directories",
    async () => (await import("./install.js")).install,
  ),
  lazy(
    "user add",
    "give an OS user a user identity (certificate + secret key) on this host (root)",
    async () => (await import("./users.js")).USER_COMMANDS[0]!,
  ),
  lazy(
    "user remove",
    "remove the user identity of an OS user from this host (root)",
    async () => (await import("./users.js")).USER_COMMANDS[1]!,
  ),
  lazy(
    "user list",
    "list the OS users of this host that have a user identity",
    async () => (await import("./users.js")).USER_COMMANDS[2]!,
  ),
];
