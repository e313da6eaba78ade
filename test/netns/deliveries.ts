// Duplicate-delivery measurement for the pre-authentication attack tests: a real UDP
// sender with numbered datagrams, a real receiver that logs each one, and the count of
// deliveries per datagram from the receiver's log, and the set-up both attacks play on.

import * as fs from "node:fs";
import type { Status } from "../../src/daemon/status.js";
import { createRoutedPair, type Capture, type Topology } from "./lib.js";
import { makeHost, makePki, startDaemon, waitRecords, type Pki, type RunningDaemon } from "./mintun.js";

/** UDP receiver: one line per datagram received on ADDR:PORT (its payload). */
export const RECEIVER = `
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], int(sys.argv[2])))
while True:
    d, _ = s.recvfrom(2048)
    print(d.decode(errors="replace"), flush=True)
`;

/**
 * UDP sender, one socket: ids 0-9 10 ms apart (they leave before any REPLY: 0-RTT), 1.5 s
 * later ids 10-19 (over the established tunnel); the socket stays open 1 s more. A flow
 * whose socket is gone when the creator resends it (after a puzzle or a stale key) has no
 * proven owner and is refused locally (users.unmapped deny, docs/IDENTITY.md): the sender stays.
 */
export const SENDER = `
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(20):
    s.sendto(("dgram-%03d" % i).encode() + b"." * 100, (sys.argv[1], int(sys.argv[2])))
    time.sleep(1.5 if i == 9 else 0.01)
time.sleep(1)
print("sent", flush=True)
`;

/** Deliveries per datagram id (dgram-000 .. dgram-019) in the receiver's log, and their histogram. */
export function countDeliveries(log: string): { counts: Map<string, number>; hist: Map<number, number> } {
  const counts = new Map<string, number>();
  for (let i = 0; i < 20; i++) counts.set(`dgram-${String(i).padStart(3, "0")}`, 0);
  for (const line of log.split("\n")) {
    const id = line.slice(0, 9);
    if (counts.has(id)) counts.set(id, counts.get(id)! + 1);
  }
  const hist = new Map<number, number>();
  for (const n of counts.values()) hist.set(n, (hist.get(n) ?? 0) + 1);
  return { counts, hist };
}

/** A routed pair with its daemons a and b (startAttackPair). */
export interface AttackPair {
  topo: Topology;
  pki: Pki;
  work: string;
  d: Record<string, RunningDaemon>;
  /** a's status once it holds b's record */
  records: Status;
  /** stop `cap` (if any), the daemons, the topology; remove the work directory */
  cleanup(cap?: Capture | null): Promise<void>;
}

/**
 * The attack set-up: a and x on one side of a delay router (`delayMs` each way), b on the
 * other; b (10.77.0.2, `bExtra` appended to its config) listens on 0.0.0.0:7000 with no
 * peers, a (10.77.0.1) has b as its peer and holds b's record. On failure it cleans up.
 */
export async function startAttackPair(opts: { delayMs: number; bExtra?: string }): Promise<AttackPair> {
  let topo: Topology | undefined;
  let work: string | undefined;
  const d: Record<string, RunningDaemon> = {};
  const cleanup = async (cap?: Capture | null): Promise<void> => {
    await cap?.stop().catch(() => undefined);
    for (const x of Object.values(d)) await x.stop().catch(() => undefined);
    await topo?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  };
  try {
    topo = await createRoutedPair({ a: ["a", "x"], b: ["b"], delayMs: opts.delayMs });
    const pki = makePki();
    work = pki.dir;
    const bIp = topo.host("b").addr4;
    d.b = await startDaemon(
      work,
      {
        host: makeHost(pki, "b", "10.77.0.2", null),
        ns: topo.host("b").ns,
        caFile: pki.caFile,
        listen: "0.0.0.0:7000",
        peers: [],
        ...(opts.bExtra !== undefined ? { extra: opts.bExtra } : {}),
      },
      false,
    );
    d.a = await startDaemon(work, {
      host: makeHost(pki, "a", "10.77.0.1", null),
      ns: topo.host("a").ns,
      caFile: pki.caFile,
      listen: "0.0.0.0:7000",
      peers: [{ name: "b", endpoint: `${bIp}:7000` }],
    });
    const records = await waitRecords(d.a);
    return { topo, pki, work, d, records, cleanup };
  } catch (e) {
    await cleanup();
    throw e;
  }
}
