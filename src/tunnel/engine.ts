/**
 * The protocol engine: the core (timers.ts EngineCore, the top of the layers in base.ts)
 * plus the two data paths, entered one batch at a time. The daemon, the directory and
 * the tests use this class; inside.ts and outside.ts see only the core, so the files
 * import in one direction:
 *
 *   engine.ts --> inside.ts  --> timers.ts (EngineCore) --> control.ts --> ... --> base.ts
 *             --> outside.ts --> timers.ts
 *             --> timers.ts
 */
import { EngineCore } from "./timers.js";
import { onTunBatch } from "./inside.js";
import type { PacketBatch, UdpBatch } from "./io.js";
import { onUdpBatch } from "./outside.js";
import { snapshotOf, type EngineSnapshot } from "./snapshot.js";

export * from "./options.js";
export { EngineCore } from "./timers.js";

export class Engine extends EngineCore {
  /** The engine's state as plain data (status, metrics, web view): snapshot.ts. */
  snapshot(now: number): EngineSnapshot {
    return snapshotOf(this, now);
  }

  /** A batch read from the TUN (send path, inside.ts). */
  handleTunBatch(b: PacketBatch, now: number): void {
    this.batchSeq++;
    onTunBatch(this, b, now);
    this.out.flush();
  }

  /** A batch received from UDP (receive path, outside.ts). */
  handleUdpBatch(b: UdpBatch, now: number): void {
    this.batchSeq++;
    this.dirHooks.udpBatch?.(b, now);
    onUdpBatch(this, b, now);
    this.out.flush();
  }
}
