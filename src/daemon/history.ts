/**
 * Bounded histories for the web view and the metrics, sampled off the data
 * path (once per second on the daemon's coarse tick, and on scrape): recent
 * engine events, per-peer throughput, and per-peer byte/packet totals that
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

/** Per-second rates of one series (bytes/s); null where there was no sample for it. */
export interface RateSeries {
  rx: (number | null)[];
  tx: (number | null)[];
}

/** What /history.json serves: columns for the chart, one time axis shared by every series. */
export interface HistoryData {
  /** sample times, unix seconds */
  t: number[];
  /** all peers together (bytes/s) */
  total: RateSeries;
  /** one per peer (at most `maxPeers`, in the order they were first seen) */
  peers: ({ peer: string } & RateSeries)[];
  /** peers with traffic that had no room in the history (counted in `total` only) */
  omittedPeers: number;
  /** seconds between samples, and how many are kept */
  intervalSec: number;
  capacity: number;
}

/**
 * Bounded history of per-peer throughput for the web view's chart, sampled from the
 * per-peer totals (PeerTotals) on the daemon's coarse tick. Memory: `capacity` sample
 * times plus rx and tx rates for the total and for at most `maxPeers` peers, i.e. at most
 * capacity × (3 + 2 × maxPeers) numbers (600 × 67 × 8 B ≈ 320 KiB with the defaults). A
 * peer that goes (no longer in the totals) loses its series; peers beyond `maxPeers` are in
 * the total only.
 */
export class PeerHistory {
  private readonly t: number[] = [];
  private readonly total: RateSeries = { rx: [], tx: [] };
  private readonly series = new Map<string, RateSeries>();
  private omitted = new Set<string>();
  private last: { t: number; all: Counts; perPeer: Map<string, Counts> } | null = null;

  constructor(
    readonly capacity = 600,
    readonly maxPeers = 32,
    readonly intervalSec = 1,
  ) {}

  /** One sample at `t` (ms) from monotonic totals; the first one only sets the baseline. */
  sample(t: number, perPeer: ReadonlyMap<string, Counts>, all: Counts): void {
    const prev = this.last;
    this.last = { t, all: { ...all }, perPeer: new Map([...perPeer].map(([k, v]) => [k, { ...v }])) };
    if (!prev || t <= prev.t) return;
    const dt = (t - prev.t) / 1000;
    const rate = (now: number, before: number) => Math.max(0, (now - before) / dt);
    for (const peer of this.series.keys()) if (!perPeer.has(peer)) this.series.delete(peer);
    this.omitted = new Set([...this.omitted].filter((p) => perPeer.has(p)));
    this.t.push(Math.round(t / 1000));
    this.total.rx.push(rate(all.rxBytes, prev.all.rxBytes));
    this.total.tx.push(rate(all.txBytes, prev.all.txBytes));
    for (const [peer, c] of perPeer) {
      let s = this.series.get(peer);
      if (!s) {
        if (this.series.size >= this.maxPeers) {
          this.omitted.add(peer);
          continue;
        }
        const pad = () => new Array<number | null>(this.t.length - 1).fill(null);
        this.series.set(peer, (s = { rx: pad(), tx: pad() }));
        this.omitted.delete(peer);
      }
      const b = prev.perPeer.get(peer);
      s.rx.push(b ? rate(c.rxBytes, b.rxBytes) : null);
      s.tx.push(b ? rate(c.txBytes, b.txBytes) : null);
    }
    if (this.t.length > this.capacity) {
      this.t.shift();
      for (const s of [this.total, ...this.series.values()]) {
        s.rx.shift();
        s.tx.shift();
      }
    }
  }

  /** Is a sample due at `now` (ms): none yet, intervalSec since the last, or the clock went back? */
  due(now: number): boolean {
    const t = this.last?.t;
    return t === undefined || now - t >= this.intervalSec * 1000 || now < t;
  }

  list(): HistoryData {
    return {
      t: this.t.slice(),
      total: { rx: this.total.rx.slice(), tx: this.total.tx.slice() },
      peers: [...this.series].map(([peer, s]) => ({ peer, rx: s.rx.slice(), tx: s.tx.slice() })),
      omittedPeers: this.omitted.size,
      intervalSec: this.intervalSec,
      capacity: this.capacity,
    };
  }
}
