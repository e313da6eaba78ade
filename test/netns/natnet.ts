/**
 * Sites behind real NATs, for the NAT traversal tests (issue 17):
 *
 *   site a LAN 192.168.1.0/24          site b LAN 192.168.2.0/24       public side
 *   a1 .1, a2 .2 ... -- swa --          b1 .1 ... -- swb --             dir 10.201.3.1
 *        lan .254 [na] eth0 10.201.1.1       lan .254 [nb] eth0 10.201.2.1   |
 *                     \------------ core router (delay router) -------------/
 *
 * Each site's router namespace `n<site>` forwards its LAN to the core and does nftables
 * masquerade on its WAN (`eth0`): "ei" plain `masquerade` (Linux keeps the source port
 * when it is free: an endpoint-independent mapping; filtering is conntrack's, i.e. only
 * replies to what went out pass), "sym" `masquerade random,fully-random` (a new random
 * port per destination: a symmetric NAT). The core router is createRouted's delay router
 * (no sch_netem on this kernel): every packet between two sides is held `delayMs` each
 * way, so a1 -> dir and dir -> b1 and a1 -> b1 all take one delay per direction.
 * With `v6`, the same NATs for IPv6 too (NAT66: nftables `ip6` masquerade on the WAN, the
 * LANs fd02:<n>::/64 routed by their router): hosts reach the public side over IPv6 from
 * their router's WAN address.
 * Everything lives in the returned Topology: cleanup() stops the delay router and
 * deletes every namespace (processes killed by PID).
 */
import { addrUp, createRouted, makeSwitch, plug, waitLinkReady, type Host, type Topology } from "./lib.js";

export type NatKind = "ei" | "sym" | "none";

export interface NatSite {
  name: string; // one letter or so: namespaces n<name>, sw<name>
  nat: NatKind;
  hosts: string[];
}

export interface NatNet {
  topo: Topology;
  /** the site's router (NAT) host: its WAN address is the public address of the site */
  router(site: string): Host;
  host(name: string): Host;
  /** replace a site's NAT rules (and forget its mappings) */
  setNat(site: string, kind: NatKind): Promise<void>;
  /** plug host `h` into `site`'s LAN too, as `dev` with address .<n>: a second network to roam to */
  attach(site: string, h: string, dev: string, n: number): Promise<string>;
}

export async function natRules(kind: NatKind, v6 = false): Promise<string[]> {
  const rules: string[] = [];
  for (const fam of v6 ? ["ip", "ip6"] : ["ip"]) {
    rules.push(
      `add table ${fam} nat`,
      `add chain ${fam} nat post { type nat hook postrouting priority 100 ; }`,
    );
    if (kind === "ei") rules.push(`add rule ${fam} nat post oifname "eth0" masquerade`);
    if (kind === "sym") rules.push(`add rule ${fam} nat post oifname "eth0" masquerade random,fully-random`);
  }
  return rules;
}

export async function createNatNet(opts: {
  sites: NatSite[];
  public: string[];
  delayMs?: number;
  /** NAT66 as well, hosts routed over IPv6 (default: IPv4 only) */
  v6?: boolean;
}): Promise<NatNet> {
  const routers = opts.sites.map((s) => `n${s.name}`);
  const topo = await createRouted({
    sides: [...routers.map((r) => ({ hosts: [r] })), { hosts: opts.public }],
    delayMs: opts.delayMs ?? 0,
  });
  try {
    for (const [si, site] of opts.sites.entries()) {
      const r = topo.host(`n${site.name}`);
      await r.ns.sysctl("net.ipv4.ip_forward", 1);
      if (opts.v6) await r.ns.sysctl("net.ipv6.conf.all.forwarding", 1);
      const sw = await makeSwitch(topo, `sw${site.name}`);
      await plug(sw, "p-router", r.ns, "lan", 1500);
      await addrUp(r.ns, "lan", `192.168.${si + 1}.254`, 24, `fd02:${si + 1}::fe`, 64);
      for (const [i, h] of site.hosts.entries()) {
        const ns = await topo.addNs(h);
        await plug(sw, `p-${h}`, ns, "eth0", 1500);
        const host: Host = {
          name: h,
          ns,
          dev: "eth0",
          addr4: `192.168.${si + 1}.${i + 1}`,
          addr6: `fd02:${si + 1}::${i + 1}`,
          prefix4: 24,
          prefix6: 64,
          gw4: `192.168.${si + 1}.254`,
        };
        await addrUp(ns, "eth0", host.addr4, 24, host.addr6, 64);
        await ns.ip("route", "add", "default", "via", host.gw4!);
        if (opts.v6) {
          host.gw6 = `fd02:${si + 1}::fe`;
          await ns.ip("-6", "route", "add", "default", "via", host.gw6);
        }
        topo.hosts[h] = host;
        await waitLinkReady(ns, "eth0");
      }
      for (const rule of await natRules(site.nat, opts.v6)) await r.ns.execOk("nft", [rule]);
    }
  } catch (e) {
    await topo.cleanup().catch(() => undefined);
    throw e;
  }
  return {
    topo,
    router: (site) => topo.host(`n${site}`),
    host: (name) => topo.host(name),
    async attach(site, h, dev, n) {
      const si = opts.sites.findIndex((s) => s.name === site);
      const sw = topo.switches.find((x) => x.name.endsWith(`-sw${site}`));
      if (si < 0 || !sw) throw new Error(`no site ${site}`);
      const ns = topo.host(h).ns;
      await plug(sw, `p-${h}-${dev}`, ns, dev, 1500);
      const a = `192.168.${si + 1}.${n}`;
      await addrUp(ns, dev, a, 24, `fd02:${si + 1}::${n}`, 64);
      await waitLinkReady(ns, dev);
      return a;
    },
    async setNat(site, kind) {
      const r = topo.host(`n${site}`);
      await r.ns.execOk("nft", ["flush ruleset"]);
      for (const rule of await natRules(kind, opts.v6)) await r.ns.execOk("nft", [rule]);
      await r.ns.execOk("conntrack", ["-F"]);
    },
  };
}
