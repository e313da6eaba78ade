/**
 * The daemon in-process, on the fakes (test/fakes: FakeTun, FakeUdp on a FakeNetwork,
 * FakeRouteManager), without root: start, status over the real API socket, reload
 * (applied keys, refused files, restart-only keys reported on every reload), close.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { apiCall } from "../../src/api/client.js";
import { loadConfig } from "../../src/config/config.js";
import { Daemon } from "../../src/daemon/daemon.js";
import type { Status } from "../../src/daemon/status.js";
import { nullLogger } from "../../src/log.js";
import { FakeRouteManager } from "../fakes/route.js";
import { FakeTun } from "../fakes/tun.js";
import { FakeNetwork } from "../fakes/udp.js";
import { makeHost, makePki } from "../netns/mintun.js";

const pki = makePki();
const host = makeHost(pki, "solo", "10.77.0.1", null);
const CONFIG = path.join(pki.dir, "solo.yaml");
const SOCKET = path.join(pki.dir, "solo.sock");

function writeConfig(extra = ""): void {
  fs.writeFileSync(
    CONFIG,
    `ca: ${pki.caFile}\nhost:\n  key: ${host.key}\n  cert: ${host.cert}\nlisten: "127.0.0.1:7000"\n` +
      `tun:\n  name: mt0\napi:\n  socket: ${SOCKET}\nstate: ${path.join(pki.dir, "state")}\n${extra}`,
  );
}

afterAll(() => fs.rmSync(pki.dir, { recursive: true, force: true }));

describe("Daemon on fakes (no root)", () => {
  it("starts, answers status, reloads (restart-only keys reported every time), closes", async () => {
    writeConfig();
    const net = new FakeNetwork();
    const routes = new FakeRouteManager();
    const tun = new FakeTun({ name: "mt0" });
    const d = await Daemon.start(loadConfig(CONFIG), nullLogger, {
      openTun: () => tun,
      bindUdp: (address, port) => net.bind({ address, port }),
      routes,
    });
    try {
      const st = (await apiCall(SOCKET, "status")) as Status;
      expect(st.host.name).toBe("solo");
      expect(st.listen).toContain("7000");
      expect(routes.calls.some((c) => c.op === "addRoute" && c.cidr === "10.77.0.0/16")).toBe(true);

      // a reloadable key is applied
      writeConfig("tunnel:\n  rekeySec: 60\n");
      let r = await d.reload();
      expect(r.ok).toBe(true);
      expect(r.applied).toContain("tunnel.rekeySec 60");
      expect(r.restartRequired).toEqual([]);

      // a restart-only key is reported and left as it runs ...
      writeConfig("tunnel:\n  rekeySec: 60\ndos:\n  perSourcePerSec: 5\n");
      r = await d.reload();
      expect(r.ok).toBe(true);
      expect(r.restartRequired).toEqual(["dos"]);
      // ... and still reported on the next reload (the effective config kept the running dos)
      r = await d.reload();
      expect(r.restartRequired).toEqual(["dos"]);
      writeConfig("tunnel:\n  rekeySec: 60\ndos:\n  perSourcePerSec: 5\nregistration:\n  refreshSec: 3\n");
      r = await d.reload();
      expect(r.restartRequired).toEqual(["dos", "registration"]);
      // back to the running values: nothing needs a restart
      writeConfig("tunnel:\n  rekeySec: 60\n");
      r = await d.reload();
      expect(r.restartRequired).toEqual([]);

      // a refused config leaves the running one
      writeConfig("tunnel:\n  rekeySec: 1\n");
      r = await d.reload();
      expect(r.ok).toBe(false);
      expect(r.error).toMatch(/rekeySec/);
      const after = (await apiCall(SOCKET, "status")) as Status;
      expect(after.daemon?.reload?.ok).toBe(false);
      expect(after.daemon?.unexpectedErrors?.total).toBe(0);
    } finally {
      await d.stop();
    }
    expect(fs.existsSync(SOCKET)).toBe(false);
  });
});
