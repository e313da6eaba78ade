/**
 * The protocol engine: the core (core.ts: tables, creation, records, rekey, timers)
 * plus the two data paths, entered one batch at a time. The daemon, the directory and
 * the tests use this class; inside.ts and outside.ts see only the core, so the files
 * import in one direction:
 *
 *   engine.ts --> inside.ts  --> core.ts
 *             --> outside.ts --> core.ts
 *             --> core.ts
 */
import { EngineCore } from "./core.js";
import { onTunBatch } from "./inside.js";
import type { PacketBatch, UdpBatch } from "./io.js";
import { onUdpBatch } from "./outside.js";

export * from "./core.js";

export class Engine extends EngineCore {
  /** A batch read from the TUN (send path, inside.ts). */
  handleTunBatch(b: PacketBatch, now: number): void {
    this.batchSeq++;
    onTunBatch(this, b, now);
    this.out.flush();
  }

  /** A batch received from UDP (receive path, outside.ts). */
  handleUdpBatch(b: UdpBatch, now: number): void {
    this.batchSeq++;
    onUdpBatch(this, b, now);
    this.out.flush();
  }
}
