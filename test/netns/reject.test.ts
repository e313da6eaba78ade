/**
 * synthReject (src/ip/reject.ts) against the real kernel, without the engine: in a
 * throwaway namespace, a TUN device whose only reader answers every packet with
 * synthReject (test/tools/reject-responder.mjs). The kernel must take the answers as the
 * remote host's: curl fails with "Connection refused" at once (the RST), a connected UDP
 * socket gets EHOSTUNREACH (ICMP 3/13) or EACCES (ICMPv6 1/1), ping prints "Packet
 * filtered". Control: with the responder dropping instead of answering, the same curl
 * times out.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Netns, type Proc } from "./lib.js";

const RESPONDER = fileURLToPath(new URL("../tools/reject-responder.mjs", import.meta.url));
const TUN = "rj0";
const REMOTE4 = "10.99.0.2";
const REMOTE6 = "fd99::2";

const UDP_PROBE = [
  "import socket, sys, time, errno",
  "fam = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET",
  "s = socket.socket(fam, socket.SOCK_DGRAM)",
  "s.connect((sys.argv[1], 5353))",
  "s.settimeout(2)",
  "t0 = time.monotonic()",
  "s.send(b'hello')",
  "try:",
  "    s.recv(100)",
  "    print('REPLY')",
  "except socket.timeout:",
  "    print('TIMEOUT %.1f' % ((time.monotonic() - t0) * 1000))",
  "except OSError as e:",
  "    print('%s %.1f' % (errno.errorcode[e.errno], (time.monotonic() - t0) * 1000))",
].join("\n");

describe.skipIf(process.getuid?.() !== 0)("synthReject answers through a real TUN (netns, no engine)", () => {
  let ns: Netns;
  let responder: Proc;

  beforeAll(async () => {
    ns = await Netns.create("rj");
    responder = ns.spawn(process.execPath, [RESPONDER, TUN]);
    await responder.waitForLog(/^READY /m);
    await ns.ip("link", "set", "lo", "up");
    await ns.ip("addr", "add", "10.99.0.1/24", "dev", TUN);
    await ns.ip("-6", "addr", "add", "fd99::1/64", "dev", TUN, "nodad");
    await ns.ip("link", "set", TUN, "up");
  }, 30_000);

  afterAll(async () => {
    await responder?.stop().catch(() => undefined);
    await ns?.destroy();
  });

  it("TCP: curl gets Connection refused at once (IPv4 and IPv6)", async () => {
    for (const url of [`http://${REMOTE4}:8080/`, `http://[${REMOTE6}]:8080/`]) {
      const t0 = performance.now();
      const r = await ns.exec("curl", ["-g", "-v", "-sS", "-m", "5", "-o", "/dev/null", url]);
      const ms = performance.now() - t0;
      console.log(`${url}: curl exit ${r.code} after ${ms.toFixed(1)} ms`);
      expect(r.code, r.stderr).toBe(7);
      expect(r.stderr).toMatch(/Connection refused/);
      expect(ms).toBeLessThan(1000);
    }
  });

  it("UDP: EHOSTUNREACH (ICMP admin prohibited) and EACCES (ICMPv6 admin prohibited)", async () => {
    for (const [addr, want] of [
      [REMOTE4, "EHOSTUNREACH"],
      [REMOTE6, "EACCES"],
    ] as const) {
      const r = await ns.exec("python3", ["-c", UDP_PROBE, addr]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout.trim().split(" ")[0], r.stdout).toBe(want);
    }
  });

  it("ping: the echo request is answered with 'Packet filtered'", async () => {
    const r = await ns.exec("ping", ["-n", "-c", "1", "-W", "2", REMOTE4]);
    expect(r.code).not.toBe(0); // no echo reply
    expect(r.stdout).toMatch(/Packet filtered/);
  });

  it("control: with the responder dropping instead of answering, the same curl times out", async () => {
    responder.signal("SIGUSR1");
    await responder.waitForLog(/^ANSWERING off$/m);
    const r = await ns.exec("curl", ["-sS", "-m", "1", "-o", "/dev/null", `http://${REMOTE4}:8080/`]);
    expect(r.code, r.stderr).toBe(28); // operation timed out
    expect(responder.readLog()).toMatch(/^DROP \d+$/m);
    expect(responder.readLog()).toMatch(/^ANSWER \d+ written 1$/m);
  });
});
