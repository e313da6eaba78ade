// The daemon's start-up steps that need no root: routes into the TUN.
import { describe, expect, it } from "vitest";
import { overlayRoutes } from "../../src/daemon/bringup.js";
import type { Config } from "../../src/config/config.js";
import type { HostCert } from "../../src/wire/cert.js";

const cfg = (routes: string[]): Config => ({ tun: { routes } }) as unknown as Config;
const cert = (ip4: string | null, ip6: string | null): HostCert => ({ ip4, ip6 }) as unknown as HostCert;

describe("overlayRoutes", () => {
  it("is the /16 and the /64 around the host's own overlay addresses by default", () => {
    expect(overlayRoutes(cfg([]), cert("10.77.3.4", "fd77:1:2:3::4"))).toEqual([
      "10.77.0.0/16",
      "fd77:1:2:3::/64",
    ]);
    expect(overlayRoutes(cfg([]), cert(null, "fd77::1"))).toEqual(["fd77:0:0:0::/64"]);
    expect(overlayRoutes(cfg([]), cert("10.1.2.3", null))).toEqual(["10.1.0.0/16"]);
  });
  it("is tun.routes when configured", () => {
    expect(overlayRoutes(cfg(["10.9.0.0/24"]), cert("10.77.3.4", "fd77::4"))).toEqual(["10.9.0.0/24"]);
  });
});
