import { ENDPOINT_CONFIG_KEYS, PORTS, endpointPort, formatEndpoint, parseEndpoint, parseIp, parseWireguardKey, type Gateway, type NatType } from '@raven/api-types';
import type { Logger } from '@raven/controller-kit';
import type { DataPathPlan } from '../planner.ts';
import type { Prober } from '../probe.ts';
import { domainOf, reachability, type Domain } from '../topology.ts';
import type { VpnDriver } from '../vpn/driver.ts';
import { NatDiscoveryResponder, classifyNat, natDiscoveryKey } from './discovery.ts';
import { natPathOf, parseNatType, stepNatPath, type NatPath, type NatPathState } from './paths.ts';

export interface NatTraversalOptions {
  log: Logger;
  prober: Prober;
  driver: VpnDriver;
  nodeName: string;
  /** The cluster PSK (raw): discovery frames are authenticated with a key derived from it. */
  psk: () => string | undefined;
  /** Called when a peer's path changes mode or endpoint: the agent replans. */
  onPathsChanged: () => void;
  /** Records this gateway's NAT type in its own tunnel endpoint (`natType`). */
  publishNatType: (natType: NatType) => Promise<void>;
  tickMs?: number;
  reclassifyMs?: number;
}

/** What one tick needs of the agent: its last plan and the Gateways as cached. */
export interface NatContext {
  plan?: DataPathPlan;
  gateways: readonly Gateway[];
  memberOf?: string;
  privateIP?: string;
}

export const NAT_PROBE_INTERVAL_MS = 300;
const probeKey = (gateway: string) => `nat/${gateway}`;

/**
 * NAT traversal (`--nat-traversal`). On the central gateway: the discovery responder. On a NATed gateway: it
 * classifies its NAT against that responder, and for every NATed peer that would be relayed runs the path state
 * machine (paths.ts) on what the cluster and the data path show. Both ends see the same mappings in the central
 * gateway's status.connections, so both punch at once.
 */
export class NatTraversal {
  private responder?: NatDiscoveryResponder;
  private readonly states = new Map<string, NatPathState>();
  private natType?: NatType;
  private nextClassifyAt = 0;
  private classifiedAgainst = '';
  private ownMapping?: string;
  private classifying = false;

  constructor(private readonly opts: NatTraversalOptions) {}

  /** The paths the planner gets (`PlanInput.natPaths`). */
  paths(): Map<string, NatPath> {
    const out = new Map<string, NatPath>();
    for (const [gateway, state] of this.states) {
      const path = natPathOf(state);
      if (path) out.set(gateway, path);
    }
    return out;
  }

  /** Why the peer is relayed, for status.connections. */
  relayReason(gateway: string): string | undefined {
    const state = this.states.get(gateway);
    if (!state) return undefined;
    return state.kind === 'relayed' ? state.reason : state.kind === 'punching' ? 'punching a direct path' : undefined;
  }

  /** Prober keys this module uses, which the agent's own probe round must not forget. */
  probeKeys(): string[] {
    return [...this.states.keys()].map(probeKey);
  }

  async run(signal: AbortSignal, context: () => NatContext): Promise<void> {
    const tickMs = this.opts.tickMs ?? NAT_PROBE_INTERVAL_MS;
    while (!signal.aborted) {
      try {
        await this.tick(context(), Date.now());
      } catch (err) {
        this.opts.log.warn({ err }, 'NAT traversal round failed');
      }
      await new Promise((r) => setTimeout(r, tickMs).unref());
    }
    this.responder?.close();
    this.responder = undefined;
  }

  private async tick(ctx: NatContext, now: number): Promise<void> {
    const plan = ctx.plan;
    const gateway = plan?.role.kind === 'gateway' ? plan.role : undefined;
    await this.serveDiscovery(gateway?.central === true);
    const local = gateway && ctx.gateways.map(domainOf).find((d) => d?.name === gateway.gateway);
    if (!plan?.vpn || !local || local.endpoint.underNAT !== true) return this.reset();
    const domains = ctx.gateways.map(domainOf).filter((d): d is Domain => d !== undefined);
    const { central, relayed } = reachability(local, domains);
    if (!central) return this.reset();
    // Our own mapping as the central gateway sees it moved (a new public address, a NAT that changed): classify again.
    const ownMapping = central.gateway.status?.connections?.find((c) => c.gateway === local.name && c.nodeName === local.endpoint.nodeName)?.endpoint;
    if (ownMapping !== this.ownMapping) {
      this.ownMapping = ownMapping;
      this.nextClassifyAt = 0;
    }
    this.maybeClassify(local, central, ctx.privateIP, now);

    const peerStatus = [...this.states.values()].some((s) => s.kind === 'punching') ? await this.opts.driver.status(plan.vpn) : [];
    const directProbes: Promise<void>[] = [];
    let changed = false;
    for (const d of relayed) {
      const prev = this.states.get(d.name);
      const handshake = peerStatus.find((p) => p.gateway === d.name && p.nodeName === d.endpoint.nodeName)?.latestHandshake;
      const next = stepNatPath(prev, this.factsOf(local, d, central), { latestHandshakeMs: handshake?.getTime(), lastReplyMs: this.opts.prober.lastReplyAt(probeKey(d.name)) }, now);
      if (next !== prev) {
        if (prev?.kind !== next.kind) this.opts.log.info({ peer: d.name, from: prev?.kind, to: next.kind, ...(next.kind === 'relayed' ? { reason: next.reason } : { endpoint: next.endpoint }) }, 'NAT path changed');
        if (JSON.stringify(natPathOf(prev)) !== JSON.stringify(natPathOf(next))) changed = true;
        this.states.set(d.name, next);
      }
      // Status is read raw here (the planner screens its own copy): only a valid address is ever probed.
      const ip = parseIp(d.nodeIPs.get(d.endpoint.nodeName));
      if (next.kind === 'direct' && ip) directProbes.push(this.opts.prober.probe(probeKey(d.name), ip, NAT_PROBE_INTERVAL_MS));
    }
    for (const name of this.states.keys()) {
      if (!relayed.some((d) => d.name === name)) {
        this.states.delete(name);
        changed = true;
      }
    }
    if (changed) this.opts.onPathsChanged();
    await Promise.all(directProbes);
  }

  private factsOf(local: Domain, peer: Domain, central: Domain) {
    const specEndpoint = (d: Domain) => d.gateway.spec?.endpoints?.find((e) => e.type === 'tunnel' && e.nodeName === d.endpoint.nodeName);
    const observedOf = (d: Domain) => parseEndpoint(central.gateway.status?.connections?.find((c) => c.gateway === d.name && c.nodeName === d.endpoint.nodeName)?.endpoint);
    const mapping = observedOf(peer);
    // Behind the same public address as we are: offer the peer's private address, which only a handshake can prove.
    const peerPrivateIP = parseIp(peer.nodeIPs.get(peer.endpoint.nodeName));
    const sameNAT = mapping !== undefined && mapping.ip === observedOf(local)?.ip;
    return {
      peerLanEndpoint: sameNAT && peerPrivateIP ? formatEndpoint(peerPrivateIP, endpointPort(peer.endpoint)) : undefined,
      localNat: this.natType ?? parseNatType(specEndpoint(local)?.natType ?? local.endpoint.natType),
      peerNat: parseNatType(specEndpoint(peer)?.natType ?? peer.endpoint.natType),
      peerEndpoint: mapping ? formatEndpoint(mapping.ip, mapping.port) : undefined,
      localEndpoint: this.ownMapping,
      peerHasKey: parseWireguardKey(peer.endpoint.config?.[ENDPOINT_CONFIG_KEYS.publicKey]) !== undefined,
    };
  }

  private reset(): void {
    if (this.states.size === 0) return;
    this.states.clear();
    this.opts.onPathsChanged();
  }

  private async serveDiscovery(central: boolean): Promise<void> {
    if (central && !this.responder) {
      const responder = new NatDiscoveryResponder({
        ports: [PORTS.natDiscovery, PORTS.natDiscoveryAlt], log: this.opts.log,
        key: () => {
          const psk = this.opts.psk();
          return psk ? natDiscoveryKey(psk) : undefined;
        },
      });
      await responder.start();
      this.responder = responder;
      this.opts.log.info({ ports: [PORTS.natDiscovery, PORTS.natDiscoveryAlt] }, 'serving NAT discovery');
    } else if (!central && this.responder) {
      this.responder.close();
      this.responder = undefined;
    }
  }

  /** Classifies in the background: at start, when the central gateway moves, and every reclassify period. */
  private maybeClassify(local: Domain, central: Domain, bindAddress: string | undefined, now: number): void {
    const server = central.endpoint.publicIP;
    const psk = this.opts.psk();
    if (!server || !psk || this.classifying) return;
    if (server === this.classifiedAgainst && now < this.nextClassifyAt) return;
    this.classifying = true;
    void classifyNat({ server, ports: [PORTS.natDiscovery, PORTS.natDiscoveryAlt], key: natDiscoveryKey(psk), bindAddress })
      .then(async (result) => {
        // No answer is retried soon: the responder may be starting with the central gateway's agent.
        this.nextClassifyAt = Date.now() + (result.natType === 'Unknown' ? 10_000 : this.opts.reclassifyMs ?? 300_000);
        this.classifiedAgainst = server;
        if (result.natType !== this.natType) this.opts.log.info({ natType: result.natType, mapping: result.mapping, detail: result.detail, server }, 'classified this gateway\'s NAT');
        this.natType = result.natType;
        if (result.natType !== 'Unknown' || !local.endpoint.natType) await this.opts.publishNatType(result.natType);
      })
      .catch((err: unknown) => this.opts.log.warn({ err }, 'could not record the NAT type'))
      .finally(() => {
        this.classifying = false;
      });
  }
}
