/**
 * The overlay DNS server of a daemon with `dns.listen`: answers for overlay names from the
 * NameService (known hosts, else the directory) and reverse lookups of overlay addresses.
 */
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { DnsCounters } from "../names/dns.js";
import { inOverlay, type NameService } from "../names/names.js";
import { DnsServer, dnsListenAddrs } from "../names/server.js";
import type { HostCert } from "../wire/cert.js";
import { overlayRoutes } from "./bringup.js";

/** Starts the DNS server when `dns.listen` is set; null when it is not. `config()` is read per query (reload). */
export async function startDns(
  config: () => Config,
  hc: HostCert,
  names: NameService,
  now: () => number,
  counters: DnsCounters,
  log: Logger,
): Promise<DnsServer | null> {
  const l = config().dns.listen;
  if (!l) return null;
  const srv = new DnsServer(
    {
      domain: config().dns.domain,
      resolve: (n) => names.resolve(n),
      // overlay addresses: known hosts, else the directory; elsewhere only an exact owner
      reverse: async (ip) =>
        inOverlay(overlayRoutes(config(), hc), hc, ip) ? names.reverse(ip) : (names.nameOf(ip) ?? undefined),
      now,
      counters,
    },
    log.child("dns"),
  );
  const addrs = dnsListenAddrs(l, hc);
  if (addrs.length === 0)
    log.log("warn", "dns.listen is overlay but the host certificate has no overlay address", {});
  await srv.listen(addrs);
  log.log("info", "DNS for overlay names", { domain: config().dns.domain, listen: srv.addresses() });
  return srv;
}
