// Duplicate-delivery measurement for the pre-authentication attack tests: a real UDP
// sender with numbered datagrams, a real receiver that logs each one, and the count of
// deliveries per datagram from the receiver's log.

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
