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
import { RelayingOutput, newRelayPathDrops, relayIn } from "./relaypath.js";
import { Rendezvous, RENDEZVOUS_DEFAULTS } from "./rendezvous.js";
import { RelayBroker } from "./relaybroker.js";
import { RelayVia } from "./via.js";
import { NoticeRelayKind, noticeKind } from "../wire/relaynotice.js";

export interface DirectoryStatus {
  client: DirectoryClientStatus | null;
  server: { store: string; records: number; hosts: number } | null;
  /** the relay this directory runs (relay.serve), null: none */
  relay: RelayStatus | null;
  /** relay hosts this directory hands pairs to (relay.hosts): offering now, pairs handed out; null: none */
  relayHosts: { offering: number; pairs: number } | null;
}

export class Directory {
  private constructor(
    readonly client: DirectoryClient | null,
    readonly server: DirectoryServer | null,
    private readonly now: () => number,
    readonly relay: RelayServer | null,
    readonly rendezvous: Rendezvous | null,
    readonly nat: NatAgent | null,
    readonly broker: RelayBroker | null,
    readonly via: RelayVia | null,
    private readonly relayOut: RelayingOutput | null,
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
    let broker: RelayBroker | null = null;
    const dc = config.directory;
    // a relay: the directory's own, or (any host) a relay host told its pairs by its directory
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
      log.log("info", "relay on", { bytesPerSec: config.relay.bytesPerSec, directory: !!dc?.serve });
    }
    if (dc?.serve) {
      const rdv = new Rendezvous(engine, relay, RENDEZVOUS_DEFAULTS, log);
      rendezvous = rdv;
      if (!relay && config.relay && config.relay.hosts.length > 0) {
        broker = new RelayBroker(engine, (k, t) => rdv.isPublic(k, t), new Set(config.relay.hosts));
        rdv.broker = broker;
      }
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
      ? new NatAgent(
          engine,
          cli.directoryEndpoints(),
          (p, at, answered) => cli.relook(p, at, answered),
          log.child("nat"),
          {
            punchTtl: config.nat.punchTtl,
          },
        )
      : null;
    const via =
      cli && nat
        ? new RelayVia(
            engine,
            now,
            (name, key, at, cb) =>
              cli.lookup({ op: "name", name }, at, (r) =>
                cb(r.ok && r.record.hostCert.publicKey.equals(key) ? r.peer : null),
              ),
            (k, a, at) => nat.setRelay(k, a, at),
            relay,
            (p) => cli.isDirectoryPeer(p),
            log.child("via"),
          )
        : null;
    if (relayOut && nat) relayOut.agent = nat;
    if (nat) nat.via = via;
    const brk = broker;
    if (srv || cli)
      hooks.frame = (t, type, buf, off, len, at) => {
        if (type === FrameType.DirRequest && srv) srv.onRequest(t, buf, off, len, at);
        else if (type === FrameType.DirResponse && cli) cli.onResponse(t, buf, off, len, at);
        else if (type === FrameType.DirNotice) {
          const dir = cli ? cli.directoryIndex(t.peer) : -1;
          const kind = noticeKind(buf, off, len);
          // from a host to this directory: a relay host's offer (or a counted drop)
          if (dir < 0 && brk) brk.onOffer(t, buf, off, len, at);
          else if (!cli || !nat || !via) return false;
          else if (kind === NoticeRelayKind.Via) via.onVia(dir, buf, off, len, at);
          else if (kind === NoticeRelayKind.Pair) via.onPair(dir, buf, off, len, at);
          else nat.onNotice(dir, buf, off, len, at);
        } else return false;
        return true;
      };
    const rs = relay;
    const pathDrops = relayOut?.drops ?? newRelayPathDrops();
    if (rs || nat) hooks.udpBatch = (b, at) => relayIn(b, rs, nat, pathDrops, at);
    return new Directory(client, server, now, relay, rendezvous, nat, broker, via, relayOut ?? null);
  }

  /** The client's and the server's counters, summed by key (status adds the engine's). */
  counters(): { drops: Record<string, number>; events: Record<string, number> } {
    const parts = [
      this.client,
      this.server,
      this.relay,
      this.rendezvous,
      this.nat,
      this.broker,
      this.via,
      this.relayOut,
    ].filter((x) => x !== null);
    return {
      drops: sumCounters(...parts.map((p) => p.drops)),
      events: sumCounters(...parts.map((p) => p.events)),
    };
  }

  tick(now: number): void {
    this.server?.tick(now);
    this.relay?.tick(now);
    this.broker?.tick(now);
    if (this.client) {
      this.client.tick(now);
      this.nat?.tick(now);
      this.via?.tick(now);
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
      relayHosts: this.broker?.state() ?? null,
    };
  }

  async close(): Promise<void> {
    await this.server?.close();
  }
}
