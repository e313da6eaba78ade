/**
 * Why a peer's record is missing, as status shows it (daemon/status.ts recordProblem):
 * refused with the verification failure (another CA: wrong-issuer), unreachable after
 * unanswered requests, fetched (no problem). Two in-process engines.
 */
import { describe, expect, it } from "vitest";
import { recordProblem } from "../../src/daemon/status.js";
import { recordText } from "../../src/cli/format.js";
import { makeCa, SimNet } from "./harness.js";

describe("status: why a peer's record is not fetched", () => {
  it("a peer certified by another CA: refused, certificate wrong-issuer", () => {
    const net = new SimNet();
    const a = net.addHost(makeCa("ca-one"), "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(makeCa("ca-two"), "b", "192.0.2.2", 7000, "10.77.0.2", null);
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    const p = a.engine.unresolved.get("b")!;
    expect(p.eph).toBeNull();
    const pr = recordProblem(p, net.now / 1000);
    expect(pr).toEqual({ reason: "refused", detail: "certificate wrong-issuer", attempts: 1 });
    expect(recordText({ record: null, recordProblem: pr })).toBe(
      "not fetched: refused (certificate wrong-issuer)",
    );
  });

  it("a peer that never answers: unreachable with the number of requests; fetched: none", () => {
    const net = new SimNet();
    const ca = makeCa();
    const a = net.addHost(ca, "a", "192.0.2.1", 7000, "10.77.0.1", null);
    const b = net.addHost(ca, "b", "192.0.2.2", 7000, "10.77.0.2", null);
    net.filter = () => false;
    a.engine.addPeer({ name: "b", endpoint: b.addr }, net.now);
    net.run();
    const p = a.engine.unresolved.get("b")!;
    expect(recordProblem(p, net.now / 1000)).toMatchObject({ reason: "pending", attempts: 1 });
    net.advance(10_000);
    const pr = recordProblem(p, net.now / 1000)!;
    expect(pr.reason).toBe("unreachable");
    expect(pr.attempts).toBeGreaterThan(1);
    expect(recordText({ record: null, recordProblem: pr })).toBe(
      `not fetched: unreachable (${pr.attempts} requests unanswered)`,
    );
    net.filter = () => true;
    net.advance(20_000);
    expect(p.eph).not.toBeNull();
    expect(recordProblem(p, net.now / 1000)).toBeNull();
    const nobody = a.engine.addPeer({ name: "c", endpoint: null }, net.now);
    expect(recordProblem(nobody, net.now / 1000)).toMatchObject({ reason: "no-endpoint" });
  });
});
