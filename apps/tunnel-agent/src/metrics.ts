import { MirroredCounter } from '@raven/controller-kit';
import { Gauge, type Registry } from 'prom-client';
import type { PeerReport } from './connections.ts';
import type { DataPathPlan } from './planner.ts';

const ROLES = ['none', 'member', 'gateway'] as const;

/** The tunnel-agent's own metrics: its role and plan size per reconcile, and per peer from each probe round. */
export class TunnelMetrics {
  private readonly role: Gauge<'role'>;
  private readonly peers: Gauge;
  private readonly prefixes: Gauge;
  private readonly handshakeAge: Gauge<'peer'>;
  private readonly rx: MirroredCounter<'peer'>;
  private readonly tx: MirroredCounter<'peer'>;
  private readonly rtt: Gauge<'peer'>;
  private readonly reachable: Gauge<'peer'>;
  private readonly relayed: Gauge<'peer'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.role = new Gauge({ name: 'raven_tunnel_role', help: '1 for the current role of this node (none, member, gateway)', labelNames: ['role'], registers });
    this.peers = new Gauge({ name: 'raven_tunnel_peers', help: 'VPN peers configured on this gateway', registers });
    this.prefixes = new Gauge({ name: 'raven_tunnel_remote_prefixes', help: 'Remote prefixes routed through the tunnel', registers });
    this.handshakeAge = new Gauge({ name: 'raven_tunnel_peer_handshake_age_seconds', help: 'Seconds since the latest handshake with a peer gateway', labelNames: ['peer'], registers });
    this.rx = new MirroredCounter({ name: 'raven_tunnel_peer_rx_bytes_total', help: 'Bytes received from a peer gateway', labelNames: ['peer'], registry });
    this.tx = new MirroredCounter({ name: 'raven_tunnel_peer_tx_bytes_total', help: 'Bytes sent to a peer gateway', labelNames: ['peer'], registry });
    this.rtt = new Gauge({ name: 'raven_tunnel_peer_rtt_seconds', help: 'Latest round-trip time to a peer gateway through the tunnel', labelNames: ['peer'], registers });
    this.relayed = new Gauge({ name: 'raven_tunnel_peer_relayed', help: '1 when a peer gateway is reached through the central gateway, 0 when directly (NAT traversal falls back to 1)', labelNames: ['peer'], registers });
    this.reachable = new Gauge({ name: 'raven_tunnel_peer_reachable', help: '1 when a peer gateway answers probes through the tunnel', labelNames: ['peer'], registers });
  }

  /** `configuredPeers`: the plan's peers the driver has a tunnel for. */
  recordPlan(plan: DataPathPlan, configuredPeers: number): void {
    for (const role of ROLES) this.role.set({ role }, plan.role.kind === role ? 1 : 0);
    this.prefixes.set(plan.remotePrefixes.length);
    this.peers.set(configuredPeers);
  }

  recordPeers(reports: readonly PeerReport[], nowMs: number): void {
    for (const { target, health, tunnel } of reports) {
      const peer = { peer: target.gateway };
      this.reachable.set(peer, health.reachable ? 1 : 0);
      this.relayed.set(peer, target.relayed ? 1 : 0);
      if (health.lastRttMs !== undefined) this.rtt.set(peer, health.lastRttMs / 1_000);
      if (!tunnel) continue;
      this.rx.update(peer, tunnel.rxBytes);
      this.tx.update(peer, tunnel.txBytes);
      if (tunnel.latestHandshake) this.handshakeAge.set(peer, (nowMs - tunnel.latestHandshake.getTime()) / 1_000);
    }
  }
}
