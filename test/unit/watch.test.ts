import { describe, expect, it } from "vitest";
import { AddressWatcher, underlayAddresses } from "../../src/net/watch.js";

describe("AddressWatcher", () => {
  it("reports only real changes of the address set", () => {
    let list = ["eth0 10.0.0.1"];
    const seen: string[][] = [];
    const w = new AddressWatcher((a) => seen.push(a), { exclude: [], monitor: false, list: () => list });
    expect(w.check()).toBe(false);
    list = ["eth0 10.0.0.1"];
    expect(w.check()).toBe(false);
    list = ["eth0 10.9.0.1"];
    expect(w.check()).toBe(true);
    list = ["eth0 10.9.0.1", "wlan0 192.168.1.5"];
    expect(w.check()).toBe(true);
    expect(seen).toEqual([["eth0 10.9.0.1"], ["eth0 10.9.0.1", "wlan0 192.168.1.5"]]);
    w.close();
    list = [];
    expect(w.check()).toBe(false); // closed
  });

  it("lists this host's addresses without loopback or excluded devices", () => {
    const all = underlayAddresses([]);
    for (const a of all) expect(a.startsWith("lo ")).toBe(false);
    const first = all[0]?.split(" ")[0];
    if (first) for (const a of underlayAddresses([first])) expect(a.startsWith(first + " ")).toBe(false);
  });
});
