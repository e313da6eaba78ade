/**
 * Wires the directory pieces into a daemon: the client (when `directories:`
 * lists any), the server and its store (when `directory.serve`), the engine
 * hooks, and the coarse tick. The daemon calls `tick`, `addressChanged`,
 * `ephemeralRotated`, `state` and `close`; everything else is here.
 */
import { sumCounters } from "./counters.js";
import type { Config } from "../config/config.js";
import type { Logger } from "../log.js";
import type { DirectoryHooks, Engine } from "../tunnel/engine.js";
import { tryEncodeAddr } from "../wire/addr.js";
import { FrameType } from "../wire/frames.js";
import { DirectoryClient, type DirectoryClientStatus } from "./client.js";
import { DirectoryServer } from "./server.js";
import { FileStore, type RecordStore } from "./store.js";
import { NatAgent } from "./nat.js";
import { RelayServer, type RelayStatus } from "./relay.js";
import { RelayingOutput, relayIn } from "./relaypath.js";
import { Rendezvous, RENDEZVOUS_DEFAULTS } from "./rendezvous.js";

export interface DirectoryStatus {
  client: DirectoryClientStatus | null;
  server: { store: string; records: number; hosts: number } | null;
  /** the relay this directory runs (relay.serve), null: none */
  relay: RelayStatus | null;
}

export class Directory {
  private constructor(
    readonly client: DirectoryClient | null,
    readonly server: DirectoryServer | null,
    private readonly now: () => number,
    readonly relay: RelayServer | null,
    readonly rendezvous: Rendezvous | null,
    readonly nat: NatAgent | null,
  ) {}

  /**
   * `hooks`: the record the engine got at construction (EngineOptions.directory); the
   * directory fills it.
   */
  static async start(
    config: Config,
    engine: Engine,
    hooks: DirectoryHooks,
    log: Logger,
    now: () => number,
    /** the engine's output, when it is a RelayingOutput (relayed paths; absent: none) */
    relayOut?: RelayingOutput,
  ): Promise<Directory> {
    let server: DirectoryServer | null = null;
    let relay: RelayServer | null = null;
    let rendezvous: Rendezvous | null = null;
    const dc = config.directory;
    if (dc?.serve) {
      if (config.relay?.serve && relayOut) {
        relay = new RelayServer(
          engine,
          relayOut,
          {
            bytesPerSec: config.relay.bytesPerSec,
            burstBytes: config.relay.burstBytes,
            maxPairs: config.relay.maxPairs,
            idleMs: 120_000,
          },
          log.child("relay"),
        );
        log.log("info", "relay on", { bytesPerSec: config.relay.bytesPerSec });
      }
      rendezvous = new Rendezvous(engine, relay, RENDEZVOUS_DEFAULTS, log);
      let store: RecordStore;
      if (dc.store === "etcd") {
        // loaded only when configured: the gRPC client is large
        const { EtcdStore } = await import("./etcd.js");
        store = await EtcdStore.open(dc.etcd!, dc.maxRecords, log.child("etcd"));
      } else {
        const fs = new FileStore(config.stateDir, dc.maxRecords, log);
        fs.load(now());
        store = fs;
      }
      server = new DirectoryServer(engine, {
        store,
        clock: now,
        logger: log,
        registerPerSec: dc.registerPerSec,
        lookupPerSec: dc.lookupPerSec,
        rendezvous,
      });
      log.log("info", "directory role on", { store: store.kind, records: store.size() });
    }
    let client: DirectoryClient | null = null;
    if (config.directories.length > 0) {
      client = new DirectoryClient(
        engine,
        {
          directories: config.directories.map((d) => tryEncodeAddr(d.endpoint.host, d.endpoint.port)!),
          ca: engine.opts.ca,
          clock: now,
          logger: log,
          registerRefreshMs: config.registration.refreshSec * 1000,
        },
        now(),
      );
      client.attach(hooks);
    }
    const srv = server;
    const cli = client;
    const nat = cli
      ? new NatAgent(engine, cli.directoryEndpoints(), (p, at) => cli.relook(p, at), log.child("nat"), {
          punchTtl: config.nat.punchTtl,
        })
      : null;
    if (relayOut && nat) relayOut.agent = nat;
    if (srv || cli)
      hooks.frame = (t, type, buf, off, len, at) => {
        if (type === FrameType.DirRequest && srv) srv.onRequest(t, buf, off, len, at);
        else if (type === FrameType.DirResponse && cli) cli.onResponse(t, buf, off, len, at);
        else if (type === FrameType.DirNotice && cli && nat)
          nat.onNotice(cli.directoryIndex(t.peer), buf, off, len, at);
        else return false;
        return true;
      };
    const rs = relay;
    if (rs || nat) hooks.udpBatch = (b, at) => relayIn(b, rs, nat, at);
    return new Directory(client, server, now, relay, rendezvous, nat);
  }

  /** The client's and the server's counters, summed by key (status adds the engine's). */
  counters(): { drops: Record<string, number>; events: Record<string, number> } {
    const parts = [this.client, this.server, this.relay, this.rendezvous, this.nat].filter((x) => x !== null);
    return {
      drops: sumCounters(...parts.map((p) => p.drops)),
      events: sumCounters(...parts.map((p) => p.events)),
    };
  }

  tick(now: number): void {
    this.server?.tick(now);
    this.relay?.tick(now);
    if (this.client) {
      this.client.tick(now);
      this.nat?.tick(now);
      this.client.engine.flushOutput();
    }
  }

  /** Our underlay address changed: register again at once (the directory records the new address). */
  addressChanged(now: number): void {
    this.client?.register(now);
  }

  /** A new ephemeral key: register it. */
  ephemeralRotated(now: number): void {
    this.client?.register(now);
  }

  state(): DirectoryStatus {
    return {
      client: this.client?.state(this.now()) ?? null,
      server: this.server?.state() ?? null,
      relay: this.relay?.state() ?? null,
    };
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
