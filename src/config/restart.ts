/**
 * Which keys a reload (SIGHUP) cannot change, and the configuration a daemon runs
 * after a reload: one table of restart-only keys drives both.
 */
import type { Config } from "./schema.js";

/**
 * Keys whose change needs a daemon restart; everything else is applied on SIGHUP
 * (see restartRequired and config/host.yaml).
 */
export const RESTART_KEYS = [
  "ca",
  "host.key",
  "host.cert",
  "listen",
  "tun.name",
  "tun.mtu",
  "ephemeral.lifetimeSec",
  "ephemeral.minFirstPacket",
  "ephemeral.replayRecords",
  "ephemeral.replayPerHost",
  "dos",
  "api.socket",
  "state",
  "metrics.listen",
  "web.listen",
  "dns",
  "gateway",
  "directories",
  "directory",
  "relay",
  "nat",
  "registration",
  "dataPath",
] as const;

type RestartKey = (typeof RESTART_KEYS)[number];

/**
 * Each restart-only key: how to read it, and how to keep the running value in the
 * effective config after a reload. One table, so that a key added to RESTART_KEYS is both
 * reported and kept (the compiler refuses a key missing here).
 */
const RESTART_FIELDS: Record<
  RestartKey,
  { get: (c: Config) => unknown; keep: (eff: Config, old: Config) => void }
> = {
  ca: { get: (c) => c.ca, keep: (e, o) => void (e.ca = o.ca) },
  "host.key": { get: (c) => c.host.key, keep: (e, o) => void (e.host = { ...e.host, key: o.host.key }) },
  "host.cert": { get: (c) => c.host.cert, keep: (e, o) => void (e.host = { ...e.host, cert: o.host.cert }) },
  listen: { get: (c) => c.listen, keep: (e, o) => void (e.listen = o.listen) },
  "tun.name": { get: (c) => c.tun.name, keep: (e, o) => void (e.tun = { ...e.tun, name: o.tun.name }) },
  "tun.mtu": { get: (c) => c.tun.mtu, keep: (e, o) => void (e.tun = { ...e.tun, mtu: o.tun.mtu }) },
  "ephemeral.lifetimeSec": {
    get: (c) => c.ephemeral.lifetimeSec,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, lifetimeSec: o.ephemeral.lifetimeSec }),
  },
  "ephemeral.minFirstPacket": {
    get: (c) => c.ephemeral.minFirstPacket,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, minFirstPacket: o.ephemeral.minFirstPacket }),
  },
  "ephemeral.replayRecords": {
    get: (c) => c.ephemeral.replayRecords,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, replayRecords: o.ephemeral.replayRecords }),
  },
  "ephemeral.replayPerHost": {
    get: (c) => c.ephemeral.replayPerHost,
    keep: (e, o) => void (e.ephemeral = { ...e.ephemeral, replayPerHost: o.ephemeral.replayPerHost }),
  },
  dos: { get: (c) => c.dos, keep: (e, o) => void (e.dos = o.dos) },
  "api.socket": {
    get: (c) => c.api.socket,
    keep: (e, o) => void (e.api = { ...e.api, socket: o.api.socket }),
  },
  state: { get: (c) => c.stateDir, keep: (e, o) => void (e.stateDir = o.stateDir) },
  "metrics.listen": {
    get: (c) => c.metrics.listen,
    keep: (e, o) => void (e.metrics = { ...e.metrics, listen: o.metrics.listen }),
  },
  "web.listen": {
    get: (c) => c.web.listen,
    keep: (e, o) => void (e.web = { ...e.web, listen: o.web.listen }),
  },
  dns: { get: (c) => c.dns, keep: (e, o) => void (e.dns = o.dns) },
  gateway: { get: (c) => c.gateway, keep: (e, o) => void (e.gateway = o.gateway) },
  directories: { get: (c) => c.directories, keep: (e, o) => void (e.directories = o.directories) },
  directory: { get: (c) => c.directory, keep: (e, o) => void (e.directory = o.directory) },
  relay: { get: (c) => c.relay, keep: (e, o) => void (e.relay = o.relay) },
  nat: { get: (c) => c.nat, keep: (e, o) => void (e.nat = o.nat) },
  registration: { get: (c) => c.registration, keep: (e, o) => void (e.registration = o.registration) },
  dataPath: { get: (c) => c.dataPath, keep: (e, o) => void (e.dataPath = o.dataPath) },
};

/** Key paths (from RESTART_KEYS) that differ between two configs. */
export function restartRequired(a: Config, b: Config): string[] {
  const f = RESTART_FIELDS;
  return RESTART_KEYS.filter((k) => JSON.stringify(f[k].get(a)) !== JSON.stringify(f[k].get(b)));
}

/**
 * The configuration a daemon runs after reloading `next` while running `old`: `next`,
 * except every restart-only key, which keeps its running value (so the next reload still
 * reports it as needing a restart).
 */
export function effectiveConfig(old: Config, next: Config): Config {
  const eff: Config = { ...next };
  for (const k of RESTART_KEYS) RESTART_FIELDS[k].keep(eff, old);
  return eff;
}
