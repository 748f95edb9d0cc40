import { checkServerIdentity, type PeerCertificate } from 'node:tls';
import { servingCommonName } from '@raven/api-types';
import type { Logger } from '@raven/controller-kit';
import type { CertificateSource } from '@raven/node-certs';
import { AgentTunnelSet, type ConnectTls, type Dialer } from '@raven/tunnel-protocol';
import type { ClientPlan, ServerTarget } from './plan.ts';

export interface ServerConnectionsOptions {
  nodeName: string;
  log: Logger;
  /** Our client certificate; read at every connect, so a rotated one is used from the next tunnel on. */
  identity: CertificateSource;
  /** CA bundle proxy-server certificates must chain to. */
  trust: string;
  dialer: Dialer;
  dialTimeoutMs: number;
  /** TLS name to verify statically configured servers against, when it differs from their address. */
  staticServerName?: string;
  /** How long a retired tunnel set may keep serving its open streams. */
  drainGraceMs: number;
  syncIntervalMs?: number;
  syncIntervalCapMs?: number;
}

interface Held {
  target: ServerTarget;
  identifiers: string;
  set: AgentTunnelSet;
}

/**
 * One AgentTunnelSet per active proxy-server address (each set honours the serverCount that address reports, for
 * replicas behind a load balancer). Sets follow the plan: new servers are joined, servers no longer active are
 * drained (no new dials; open streams finish within the grace) and left, and a change of this client's domain
 * members reconnects with the new identifiers before the old tunnels are drained.
 */
export class ServerConnections {
  private readonly held = new Map<string, Held>();
  private readonly retiring = new Set<AgentTunnelSet>();
  private readonly tally = { bytesToServers: 0, bytesFromServers: 0 };

  constructor(private readonly opts: ServerConnectionsOptions) {}

  reconcile(plan: ClientPlan): void {
    const wanted = plan.active ? plan.servers : [];
    const identifiers = [...new Set([...plan.members.keys(), ...plan.members.values()])].sort();
    const key = identifiers.join(',');
    for (const [address, held] of [...this.held]) {
      const target = wanted.find((t) => t.address === address);
      if (!target || target.node !== held.target.node || held.identifiers !== key) {
        this.held.delete(address);
        this.retire(held, !target ? 'server no longer active' : 'identifiers changed');
      }
    }
    for (const target of wanted) {
      if (this.held.has(target.address)) continue;
      const set = this.join(target, identifiers);
      this.held.set(target.address, { target, identifiers: key, set });
    }
  }

  /** Tunnels held now (one per server replica reached). */
  connectedServers(): number {
    let n = 0;
    for (const { set } of this.held.values()) n += set.tunnels.size;
    return n;
  }

  stats(): { streams: number; bytesToServers: number; bytesFromServers: number } {
    let streams = 0;
    let { bytesToServers, bytesFromServers } = this.tally;
    for (const set of [...[...this.held.values()].map((h) => h.set), ...this.retiring]) {
      for (const tunnel of set.tunnels.values()) {
        const s = tunnel.stats();
        streams += s.connections;
        bytesToServers += s.bytesToServer;
        bytesFromServers += s.bytesFromServer;
      }
    }
    return { streams, bytesToServers, bytesFromServers };
  }

  /** SIGTERM: drain every set, give open streams the grace period, then close. */
  async stop(): Promise<void> {
    const all = [...this.held.values()];
    this.held.clear();
    await Promise.all(all.map((h) => this.retire(h, 'shutting down')));
    await Promise.all([...this.retiring].map((set) => set.stop()));
  }

  private join(target: ServerTarget, identifiers: string[]): AgentTunnelSet {
    const { log, nodeName } = this.opts;
    const set = new AgentTunnelSet({
      address: target.address,
      tls: () => this.tls(target),
      agentId: nodeName,
      identifiers: { host: identifiers },
      dialer: this.opts.dialer,
      dialTimeoutMs: this.opts.dialTimeoutMs,
      syncIntervalMs: this.opts.syncIntervalMs,
      syncIntervalCapMs: this.opts.syncIntervalCapMs,
      logger: log.child({ server: target.address }),
    });
    set.on('disconnected', (tunnel) => {
      const s = tunnel.stats();
      this.tally.bytesToServers += s.bytesToServer;
      this.tally.bytesFromServers += s.bytesFromServer;
    });
    set.start();
    log.info({ server: target.address, serverNode: target.node, identifiers }, 'joining proxy-server');
    return set;
  }

  private async retire(held: Held, why: string): Promise<void> {
    const { set } = held;
    this.retiring.add(set);
    set.drain();
    this.opts.log.info({ server: held.target.address, why }, 'draining tunnels to proxy-server');
    const deadline = Date.now() + this.opts.drainGraceMs;
    const open = () => [...set.tunnels.values()].reduce((n, t) => n + t.stats().connections, 0);
    while (open() > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    await set.stop();
    this.retiring.delete(set);
  }

  /** mTLS with our client certificate; a discovered server must present the serving certificate of its node. */
  private tls(target: ServerTarget): ConnectTls {
    const pair = this.opts.identity.current();
    if (!pair) throw new Error('no client certificate yet');
    const expectedNode = target.node;
    // A discovered server is verified by its node name (a DNS SAN of its serving certificate) rather than its IP.
    const servername = target.node ?? this.opts.staticServerName;
    return {
      ca: this.opts.trust, cert: pair.certPem, key: pair.keyPem, ...(servername ? { servername } : {}),
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        const byName = checkServerIdentity(host, cert);
        if (byName || !expectedNode) return byName;
        const cn = cert.subject?.CN;
        return cn === servingCommonName(expectedNode) ? undefined : new Error(`proxy-server at ${target.address} presented ${String(cn)}, not ${servingCommonName(expectedNode)}`);
      },
    };
  }
}
