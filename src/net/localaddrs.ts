/**
 * The host's own underlay addresses, published as signed candidates in its ephemeral
 * certificate when it listens on a wildcard address (issue 17: a host behind the same
 * NAT as its peer is reached on its local address; the directory adds the address it
 * observed, unsigned). Loopback, link-local, the TUN device's own addresses and any
 * overlay address are left out; at most MAX_LOCAL_CANDIDATES, IPv4 first.
 */
import * as os from "node:os";

/** Candidates a host publishes (the ephemeral certificate holds up to 8 endpoints). */
export const MAX_LOCAL_CANDIDATES = 4;

export interface LocalAddrSource {
  /** os.networkInterfaces()-shaped: injectable for tests */
  interfaces(): NodeJS.Dict<os.NetworkInterfaceInfo[]>;
}

const OS_SOURCE: LocalAddrSource = { interfaces: () => os.networkInterfaces() };

/**
 * `listenIp` "0.0.0.0" publishes IPv4 addresses, "::" both families; a specific
 * address publishes only itself. `skip`: interface names (the TUN) and addresses
 * (overlay) never published.
 */
export function localEndpoints(
  listenIp: string,
  port: number,
  skip: { devs: string[]; addrs: string[] },
  src: LocalAddrSource = OS_SOURCE,
): { ip: string; port: number }[] {
  if (port === 0) return [];
  if (listenIp !== "0.0.0.0" && listenIp !== "::") return [{ ip: listenIp, port }];
  const v4: string[] = [];
  const v6: string[] = [];
  const ifs = src.interfaces();
  for (const name of Object.keys(ifs).sort()) {
    if (skip.devs.includes(name)) continue;
    for (const a of ifs[name] ?? []) {
      if (a.internal || skip.addrs.includes(a.address)) continue;
      if (a.family === "IPv4") {
        if (!a.address.startsWith("169.254.")) v4.push(a.address);
      } else if (listenIp === "::" && !/^fe[89ab]/i.test(a.address) && !a.address.includes("%")) {
        v6.push(a.address);
      }
    }
  }
  return [...v4, ...v6].slice(0, MAX_LOCAL_CANDIDATES).map((ip) => ({ ip, port }));
}
