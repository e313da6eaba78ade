/**
 * Per-source token buckets for packets that cost the responder work before
 * any authentication (CREATE with an unknown TID, RECORD_REQUEST). IPv4
 * sources are keyed by address, IPv6 by their /64 (one host usually owns a
 * whole /64). The table is bounded: when full, the oldest entries go first,
 * and a sweep drops entries that have refilled completely.
 */
interface Bucket {
  tokens: number;
  at: number;
}

export class SourceBuckets {
  private readonly map = new Map<string, Bucket>();

  constructor(
    readonly ratePerSec: number,
    readonly burst: number,
    readonly maxEntries = 65_536,
  ) {}

  /** Key of a 20-byte address record: v4 address, or the /64 of a v6 one (port ignored). */
  static key(addr: Buffer, off: number): string {
    return addr[off] === 6 ? addr.latin1Slice(off + 4, off + 12) + "/64" : addr.latin1Slice(off + 4, off + 8);
  }

  /** Take one token for this source; false when it is over its rate. */
  take(addr: Buffer, off: number, now: number): boolean {
    const k = SourceBuckets.key(addr, off);
    let b = this.map.get(k);
    if (!b) {
      if (this.map.size >= this.maxEntries) this.map.delete(this.map.keys().next().value!);
      b = { tokens: this.burst, at: now };
      this.map.set(k, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) * this.ratePerSec) / 1000);
      b.at = now;
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  /** Drop entries that are full again (called from the coarse tick). */
  sweep(now: number): void {
    for (const [k, b] of this.map) {
      if (b.tokens + ((now - b.at) * this.ratePerSec) / 1000 >= this.burst) this.map.delete(k);
    }
  }

  get size(): number {
    return this.map.size;
  }
}
