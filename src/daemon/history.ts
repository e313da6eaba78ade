/**
 * Bounded histories for the web view and the metrics, sampled off the data
 * path (once per second, from an unref'd timer, and on scrape): recent
 * engine events, per-second traffic, and per-peer byte/packet totals that
 * stay monotonic when tunnels close (a closed tunnel's last sampled counters
 * are kept in the peer's "retired" sum; at most one sample interval of a
 * closing tunnel's traffic is not counted).
 */

export interface EventEntry {
  /** wall clock, ms */
  t: number;
  kind: string;
  fields: Record<string, unknown>;
}

/** The last `capacity` events, oldest first. */
export class EventRing {
  private readonly buf: EventEntry[] = [];
  private next = 0;
  total = 0;

  constructor(readonly capacity = 200) {}

  push(t: number, kind: string, fields: Record<string, unknown> = {}): void {
    const e = { t, kind, fields };
    if (this.buf.length < this.capacity) this.buf.push(e);
    else this.buf[this.next] = e;
    this.next = (this.next + 1) % this.capacity;
    this.total++;
  }

  list(): EventEntry[] {
    return this.buf.length < this.capacity
      ? this.buf.slice()
      : [...this.buf.slice(this.next), ...this.buf.slice(0, this.next)];
  }
}

export interface Counts {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
}

export interface TunnelCounts extends Counts {
  peer: string;
  session: string;
}

const zeroCounts = (): Counts => ({ rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 });
const KEYS = ["rxBytes", "txBytes", "rxPackets", "txPackets"] as const;

function add(a: Counts, b: Counts): void {
  for (const k of KEYS) a[k] += b[k];
}

/** Per-peer totals that never go down, from snapshots of the live tunnels. */
export class PeerTotals {
  private readonly live = new Map<string, TunnelCounts>();
  private readonly retired = new Map<string, Counts>();
  /** counts of peers that are gone (kept so that the overall totals never go down) */
  private readonly forgotten = zeroCounts();

  /**
   * Feed the current tunnels; returns totals per peer (retired + live) and overall. With
   * `peers` (the names the daemon knows now), the totals of a peer that is gone and has no
   * tunnel are forgotten, so per-peer series end with the peer (bounded cardinality); the
   * overall totals keep them.
   */
  update(
    tunnels: readonly TunnelCounts[],
    peers?: ReadonlySet<string>,
  ): { perPeer: Map<string, Counts>; all: Counts } {
    const seen = new Set<string>();
    for (const t of tunnels) {
      const id = `${t.peer}\u0000${t.session}`;
      seen.add(id);
      this.live.set(id, { ...t });
    }
    for (const [id, t] of this.live)
      if (!seen.has(id)) {
        let r = this.retired.get(t.peer);
        if (!r) this.retired.set(t.peer, (r = zeroCounts()));
        add(r, t);
        this.live.delete(id);
      }
    if (peers)
      for (const [peer, r] of this.retired)
        if (!peers.has(peer)) {
          add(this.forgotten, r);
          this.retired.delete(peer);
        }
    const perPeer = new Map<string, Counts>();
    for (const [peer, r] of this.retired) perPeer.set(peer, { ...r });
    for (const t of this.live.values()) {
      let c = perPeer.get(t.peer);
      if (!c) perPeer.set(t.peer, (c = zeroCounts()));
      add(c, t);
    }
    const all = zeroCounts();
    add(all, this.forgotten);
    for (const c of perPeer.values()) add(all, c);
    return { perPeer, all };
  }
}

export interface TrafficSample {
  /** wall clock, ms */
  t: number;
  /** per second over the interval since the previous sample */
  rxBps: number;
  txBps: number;
  rxPps: number;
  txPps: number;
  tunnels: number;
}

/** Per-second traffic rates, the last `capacity` samples, oldest first. */
export class TrafficHistory {
  private readonly ring: TrafficSample[] = [];
  private last: { t: number; c: Counts } | null = null;

  constructor(readonly capacity = 300) {}

  sample(t: number, totals: Counts, tunnels: number): void {
    const prev = this.last;
    this.last = { t, c: { ...totals } };
    if (!prev || t <= prev.t) return;
    const dt = (t - prev.t) / 1000;
    const rate = (k: keyof Counts) => Math.max(0, (totals[k] - prev.c[k]) / dt);
    this.ring.push({
      t,
      rxBps: rate("rxBytes"),
      txBps: rate("txBytes"),
      rxPps: rate("rxPackets"),
      txPps: rate("txPackets"),
      tunnels,
    });
    if (this.ring.length > this.capacity) this.ring.shift();
  }

  list(): TrafficSample[] {
    return this.ring.slice();
  }
}
