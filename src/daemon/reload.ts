/**
 * The steps of a configuration reload (SIGHUP, `mintun reload`) that do not need the
 * daemon's own state: reading everything the new config names (all or nothing), handing the
 * reloadable tunnel options, the revocation list and the routes to the running parts. The
 * order and the bookkeeping (status, events, notify) stay in Daemon.reload (daemon.ts).
 */
import type { Config } from "../config/config.js";
import { loadConfig } from "../config/config.js";
import type { Policy } from "../conn/policy.js";
import type { Logger } from "../log.js";
import type { RouteManager } from "../net/route.js";
import { UserStore, usersDir } from "../store/users.js";
import { loadPolicy } from "../store/policy-file.js";
import type { Engine } from "../tunnel/engine.js";
import type { ReloadableOptions } from "../tunnel/options.js";
import type { HostCert } from "../wire/cert.js";
import { RevocationIndex, type RevocationList } from "../wire/revocation.js";
import {
  loadRevocationList,
  overlayRoutes,
  reloadableOptions,
  resolvePeers,
  type ResolvedPeer,
} from "./bringup.js";

/** Everything a reload reads from disk and DNS, before anything running changes. */
export interface ReloadInputs {
  next: Config;
  peers: ResolvedPeer[];
  policy: Policy | null;
  revList: RevocationList | null;
  store: UserStore;
}

/**
 * Reads the config file again and what it names. Throws (typed errors from the loaders) when
 * any of it is refused: the reload is then refused as a whole and the running config stays.
 */
export async function readReloadInputs(
  file: string,
  stateDir: string,
  engine: Engine,
  at: number,
  log: Logger,
): Promise<ReloadInputs> {
  const next = loadConfig(file);
  const peers = await resolvePeers(next);
  // a refused policy or user store refuses the reload: the running ones stay
  const policy = next.policy ? loadPolicy(next.policy) : null;
  const revList = next.trust.revocationList
    ? loadRevocationList(next.trust.revocationList, engine.opts.ca, Math.floor(at / 1000), log)
    : null;
  const store = UserStore.load(usersDir(stateDir));
  return { next, peers, policy, revList, store };
}

const UNITS: Record<keyof ReloadableOptions, [string, number]> = {
  rekeyAfterMs: ["tunnel.rekeySec", 1000],
  keepaliveMs: ["tunnel.keepaliveSec", 1000],
  idleTimeoutMs: ["tunnel.idleTimeoutSec", 1000],
  maxTunnels: ["tunnel.maxTunnels", 1],
  maxPerHost: ["tunnel.maxPerHost", 1],
  unconfirmedTimeoutMs: ["tunnel.unconfirmedTimeoutSec", 1000],
};

/** The tunnel options and the policy of the new config to the engine; what changed, as config keys. */
export function applyTunnelOptions(engine: Engine, next: Config, policy: Policy | null): string[] {
  const opts = reloadableOptions(next);
  return engine.reconfigure(opts, policy).map((k) => {
    const [key, unit] = UNITS[k];
    return `${key} ${(opts[k] ?? 0) / unit}`;
  });
}

/**
 * The revocation list: a newer file replaces the list in force (tunnels and connections of
 * newly revoked hosts and users close at once); a list a directory gave us that is newer
 * than the file stays; no trust.revocationList: none. What happened, for `applied`.
 */
export function applyRevocation(engine: Engine, revList: RevocationList | null, now: number): string[] {
  const cur = engine.revocation;
  if (revList && (!cur || revList.number > cur.number)) {
    engine.setRevocation(new RevocationIndex(revList), now);
    return [`revocationList #${revList.number} (${revList.entries.length} entries)`];
  }
  if (revList && cur && revList.number < cur.number)
    return [`revocationList: kept #${cur.number}, newer than the file's #${revList.number}`];
  if (!revList && cur) {
    engine.setRevocation(null, now);
    return ["revocationList none"];
  }
  return [];
}

/** Overlay routes the new config adds or drops (subnets, prefixes), applied to the TUN device. */
export async function syncOverlayRoutes(
  routes: RouteManager,
  dev: string,
  old: Config,
  next: Config,
  hc: HostCert,
): Promise<{ applied: string[]; errors: string[] }> {
  const before = new Set(overlayRoutes(old, hc));
  const after = new Set(overlayRoutes(next, hc));
  const applied: string[] = [];
  const errors: string[] = [];
  for (const r of after)
    if (!before.has(r))
      await routes.addRoute(dev, r).then(
        () => applied.push(`route +${r}`),
        (e: unknown) => errors.push(`add ${r}: ${String(e)}`),
      );
  for (const r of before)
    if (!after.has(r))
      await routes.delRoute(dev, r).then(
        () => applied.push(`route -${r}`),
        (e: unknown) => errors.push(`del ${r}: ${String(e)}`),
      );
  return { applied, errors };
}
