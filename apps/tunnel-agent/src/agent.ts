import {
  CONFIGMAPS, PORTS, RAVEN_CFG_KEYS, gatewayV1beta1Schema, toNodeView, type AgentDiagnose, type Connection, type Gateway, type NodeView,
} from '@raven/api-types';
import {
  Controller, HeartbeatRenewer, Informer, RESOURCES, deepEqual, type Check, type KubeClient, type Logger,
} from '@raven/controller-kit';
import { isIPv4, isIP } from 'node:net';
import { hasChanges, type Exec } from '@raven/netlink';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { DataPathApplier } from './datapath.ts';
import { buildDiagnoseReport } from './diagnose.ts';
import { HostFactsError, discoverHostFacts, type HostFacts } from './facts.ts';
import { connectionsWriteDue, peerReports, type PeerReport } from './connections.ts';
import { TunnelMetrics } from './metrics.ts';
import { planDataPath, vpnBeforeKernel, type DataPathPlan } from './planner.ts';
import { Prober } from './probe.ts';
import type { PresharedKey } from './psk.ts';
import { NatTraversal } from './nat/traversal.ts';
import { KnownKeys, natTypePatch, publicKeyPatch, type JsonPatch } from './public-keys.ts';
import type { VpnDriver } from './vpn/driver.ts';


export interface AgentOptions {
  kube: KubeClient;
  log: Logger;
  registry: Registry;
  exec: Exec;
  driver: VpnDriver;
  psk: PresharedKey;
  nodeName: string;
  namespace: string;
  forwardNodeIP: boolean;
  keepaliveSeconds: number;
  resyncMs: number;
  probeIntervalMs: number;
  heartbeat: { intervalMs: number };
  /** Direct paths between NATed gateways (and the discovery responder on the central one); off by default. */
  natTraversal?: boolean;
}

const configMapSchema = z.object({ metadata: z.object({ name: z.string(), resourceVersion: z.string().optional() }), data: z.record(z.string(), z.string()).optional() });
type ConfigMapView = z.infer<typeof configMapSchema>;

// The vxlan underlay is IPv4: a dual-stack node listing its IPv6 InternalIP first still uses its IPv4 one.
const vxlanUnderlayIP = (node: NodeView): string | undefined => node.internalIPs.find((ip) => isIPv4(ip)) ?? node.internalIPs[0];

const KEY = 'datapath';
const FIELD_MANAGER = 'raven-tunnel-agent';

/**
 * The tunnel-agent's control loop: caches of the Gateways, its own Node and raven-cfg feed one reconcile that
 * plans the node's whole L3 state and applies it (VPN device first when gateway, kernel state, then publishing
 * its WireGuard key). It never applies before its caches are synced, and never flushes on start: an unchanged
 * plan is an unchanged kernel, which is what makes restarts hitless.
 */
export class TunnelAgent {
  private readonly gateways: Informer<Gateway>;
  private readonly node: Informer<NodeView>;
  private readonly ravenConfig: Informer<ConfigMapView>;
  private readonly controller: Controller;
  private readonly applier: DataPathApplier;
  private readonly heartbeat: HeartbeatRenewer;
  private readonly prober = new Prober(PORTS.tunnelProbe);
  private publicKey?: string;
  private host?: HostFacts;
  private lastPlan?: DataPathPlan;
  private lastPlanAt?: number;
  private lastPeers?: { at: number; reports: PeerReport[] };
  private lastError?: string;
  private lastConnectionsWrite = 0;
  private lastDropped = '';
  /** The next apply reads the whole kernel state back (periodic resync, first run, after an error). */
  private verifyDue = true;
  private readonly knownKeys = new KnownKeys();
  private readonly metrics: TunnelMetrics;
  private readonly nat?: NatTraversal;

  constructor(private readonly opts: AgentOptions) {
    const common = { kube: opts.kube, log: opts.log, registry: opts.registry, metricPrefix: 'raven_tunnel' };
    this.gateways = new Informer({ ...common, type: RESOURCES.gateways, transform: (raw) => gatewayV1beta1Schema.parse(raw) });
    this.node = new Informer({ ...common, type: RESOURCES.nodes, fieldSelector: `metadata.name=${opts.nodeName}`, transform: toNodeView });
    this.ravenConfig = new Informer({ ...common, type: RESOURCES.configMaps, namespace: opts.namespace, fieldSelector: `metadata.name=${CONFIGMAPS.ravenConfig}`, transform: (raw) => configMapSchema.parse(raw) });
    this.applier = new DataPathApplier(opts.exec);
    this.heartbeat = new HeartbeatRenewer({ kube: opts.kube, log: opts.log, component: 'tunnel', nodeName: opts.nodeName, ...opts.heartbeat });
    this.controller = new Controller({
      name: 'tunnel-agent', log: opts.log, registry: opts.registry, metricPrefix: 'raven_tunnel',
      resyncMs: opts.resyncMs, reconcile: () => this.reconcile(),
      // Between resyncs an unchanged subsystem is not read back; each resync verifies all of it, so a change someone
      // else made in the kernel is repaired within one resync period.
      resyncKeys: () => {
        this.verifyDue = true;
        return [KEY];
      },
    });
    this.metrics = new TunnelMetrics(opts.registry);
    if (opts.natTraversal) {
      this.nat = new NatTraversal({
        log: opts.log.child({ component: 'nat-traversal' }), prober: this.prober, driver: opts.driver, nodeName: opts.nodeName,
        psk: () => opts.psk.value, onPathsChanged: () => this.controller.enqueue(KEY),
        publishNatType: async (natType) => {
          const gw = this.ownGateway();
          const patch = gw && natTypePatch(gw, opts.nodeName, natType);
          if (gw && patch) await this.patchOwnEndpoint(gw, patch, { natType });
        },
      });
    }
    const enqueue = () => this.controller.enqueue(KEY);
    for (const informer of [this.gateways, this.node, this.ravenConfig] as Array<Informer<{ metadata: { name: string } }>>) {
      informer.on({ add: enqueue, update: enqueue, delete: enqueue });
    }
  }

  get informers(): Array<Informer<{ metadata: { name: string } }>> {
    return [this.gateways, this.node, this.ravenConfig] as Array<Informer<{ metadata: { name: string } }>>;
  }

  readiness: Check = () => {
    const pending = this.informers.filter((i) => !i.hasSynced()).map((i) => i.resource);
    if (pending.length > 0) return { ok: false, detail: `waiting for ${pending.join(', ')}` };
    if (!this.lastPlan) return { ok: false, detail: this.lastError ?? 'no reconcile yet' };
    return { ok: this.lastError === undefined, detail: this.lastError ?? `role ${this.lastPlan.role.kind}` };
  };

  /** The read-only self-report served at /debug/diagnose: built from what the last reconcile and probe round kept. */
  diagnose(now = Date.now()): AgentDiagnose {
    const { outcomes, drift } = this.applier.history();
    const plan = this.lastPlan;
    // Peer reports belong to the gateway role; a node that left it reports none.
    const peers = plan?.role.kind === 'gateway' && this.lastPeers
      ? { ...this.lastPeers, unconfigured: (r: PeerReport) => (r.target.relayed ? undefined : this.opts.driver.unconfigured(r.target.via)) }
      : undefined;
    return buildDiagnoseReport({
      nodeName: this.opts.nodeName, now, driver: this.opts.driver.name,
      l3Enabled: this.ravenConfig.list()[0]?.data?.[RAVEN_CFG_KEYS.l3Tunnel] === 'true',
      ready: this.readiness().ok, lastError: this.lastError, psk: this.opts.psk.describe(), plan, planAt: this.lastPlanAt, host: this.host, outcomes, drift, peers,
    });
  }

  async start(signal: AbortSignal): Promise<void> {
    this.publicKey = (await this.opts.driver.init()).publicKey;
    await this.prober.start();
    for (const i of this.informers) i.start();
    await Promise.all(this.informers.map((i) => i.waitForSync(signal)));
    if (signal.aborted) return;
    await this.opts.psk.refresh();
    this.controller.start();
    void this.heartbeat.run(signal, () => this.isTunnelCandidate());
    void this.probeLoop(signal);
    if (this.nat) {
      void this.nat.run(signal, () => ({ plan: this.lastPlan, gateways: this.gateways.list(), memberOf: this.node.list()[0]?.gateway, privateIP: this.host?.privateIP }));
    }
    const pskTimer = setInterval(() => void this.opts.psk.refresh().then((changed) => changed && this.controller.enqueue(KEY)), 30_000);
    pskTimer.unref();
    signal.addEventListener('abort', () => clearInterval(pskTimer), { once: true });
  }

  async stop(): Promise<void> {
    await this.controller.stop();
    await Promise.all(this.informers.map((i) => i.stop()));
    this.prober.close();
  }

  private ownGateway(): Gateway | undefined {
    const name = this.node.list()[0]?.gateway;
    return name ? this.gateways.get(name) : undefined;
  }

  private isTunnelCandidate(): boolean {
    return (this.ownGateway()?.spec?.endpoints ?? []).some((e) => e.type === 'tunnel' && e.nodeName === this.opts.nodeName);
  }

  private async reconcile(): Promise<void> {
    const { log, nodeName } = this.opts;
    try {
      const node = this.node.list()[0];
      const internalIP = node ? vxlanUnderlayIP(node) : undefined;
      if (!node || !internalIP) throw new HostFactsError(`Node ${nodeName} has no InternalIP yet`);
      if (!this.host || this.host.privateIP !== internalIP) this.host = await discoverHostFacts(this.opts.exec, internalIP);
      const cfg = this.ravenConfig.list()[0];
      const plan = planDataPath({
        nodeName, memberOf: node.gateway, gateways: this.knownKeys.fill(this.gateways.list()), l3Enabled: cfg?.data?.[RAVEN_CFG_KEYS.l3Tunnel] === 'true',
        host: this.host, forwardNodeIP: this.opts.forwardNodeIP, driver: this.opts.driver.name, presharedKey: this.opts.psk.wireguardKey,
        keepaliveSeconds: this.opts.keepaliveSeconds, protectedIPs: this.protectedIPs(), natPaths: this.nat?.paths(),
      });
      const dropped = plan.dropped.join('\n');
      if (dropped !== this.lastDropped && plan.dropped.length > 0) log.warn({ dropped: plan.dropped }, 'left invalid or unsafe Gateway values out of the data path');
      this.lastDropped = dropped;
      const started = performance.now();
      // The VPN device exists before the kernel state that refers to it, and goes after it (gateway or warm standby).
      const withVpn = plan.vpn !== undefined;
      const early = plan.vpn && vpnBeforeKernel(plan.vpn, this.lastPlan?.vpn);
      const vpnFirst = early ? await this.opts.driver.apply(early) : { changed: false };
      const verify = this.verifyDue || vpnFirst.changed; // a new VPN device has nothing on it yet
      this.verifyDue = false;
      const kernel = await this.applier.apply(plan, { verify });
      const vpnAfter = !withVpn ? await this.opts.driver.apply(undefined) : early !== plan.vpn ? await this.opts.driver.apply(plan.vpn) : { changed: false };
      await this.publishPublicKey();
      const changed = hasChanges(kernel) || vpnFirst.changed || vpnAfter.changed;
      if (changed || !deepEqual(plan.role, this.lastPlan?.role)) {
        log.info({ role: plan.role, kernel, vpnChanged: vpnFirst.changed || vpnAfter.changed, remotePrefixes: plan.remotePrefixes.length, peers: plan.vpn?.peers.length ?? 0, ms: Math.round(performance.now() - started) }, 'data path reconciled');
      }
      // Peer reports belong to the gateway role: a node that leaves it clears them rather than leave them stale.
      if (this.lastPlan?.role.kind === 'gateway' && plan.role.kind !== 'gateway') await this.writeConnections([], true);
      this.metrics.recordPlan(plan, plan.vpn?.peers.filter((p) => !this.opts.driver.unconfigured(p)).length ?? 0);
      this.lastPlan = plan;
      this.lastPlanAt = Date.now();
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.verifyDue = true;
      throw err;
    }
  }

  /** The apiserver's address is never routed into a tunnel, so a bad status cannot cut this node off from it. */
  private protectedIPs(): string[] {
    const host = this.opts.kube.server.hostname.replace(/^\[|\]$/g, '');
    const inCluster = process.env.KUBERNETES_SERVICE_HOST ?? '';
    return [host, inCluster].filter((ip) => isIP(ip) !== 0);
  }

  /** Publishes this node's public key in its own tunnel endpoint's config. */
  private async publishPublicKey(): Promise<void> {
    const gw = this.ownGateway();
    const patch = gw && this.publicKey ? publicKeyPatch(gw, this.opts.nodeName, this.publicKey) : undefined;
    if (!gw || !patch) return;
    await this.patchOwnEndpoint(gw, patch, {});
    this.opts.log.info({ gateway: gw.metadata.name }, 'published WireGuard public key');
  }

  private async patchOwnEndpoint(gw: Gateway, patch: JsonPatch, what: object): Promise<void> {
    await this.opts.kube.patch(RESOURCES.gateways, { name: gw.metadata.name }, patch, 'json', { fieldManager: FIELD_MANAGER });
    if (Object.keys(what).length > 0) this.opts.log.info({ gateway: gw.metadata.name, ...what }, 'recorded in own tunnel endpoint');
  }

  private async probeLoop(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      await new Promise((r) => setTimeout(r, this.opts.probeIntervalMs).unref());
      try {
        await this.probeOnce();
      } catch (err) {
        this.opts.log.warn({ err }, 'probe round failed');
      }
    }
  }

  private async probeOnce(): Promise<void> {
    const plan = this.lastPlan;
    if (!plan?.vpn || plan.role.kind !== 'gateway') return;
    await Promise.all(plan.probes.filter((p) => p.ip).map((p) => this.prober.probe(p.gateway, p.ip!)));
    this.prober.forgetAllBut(new Set([...plan.probes.map((p) => p.gateway), ...(this.nat?.probeKeys() ?? [])]));
    const { driver } = this.opts;
    const relayReason = (gateway: string) => this.nat?.relayReason(gateway) ?? (this.nat ? undefined : 'both gateways are behind NAT (NAT traversal is off)');
    const reports = peerReports(plan.probes, (gateway) => this.prober.health(gateway), await driver.status(plan.vpn), (peer) => driver.unconfigured(peer), relayReason);
    this.metrics.recordPeers(reports, Date.now());
    this.lastPeers = { at: Date.now(), reports };
    await this.writeConnections(reports.map((r) => r.connection));
  }

  /** Writes status.connections when reachability changed, and at most once a minute for fresh RTTs. */
  private async writeConnections(connections: Connection[], force = false): Promise<void> {
    const gw = this.ownGateway();
    if (!gw) return;
    // Peer reports belong to the active tunnel endpoint (the admission policy refuses anyone else's but a clear).
    const active = gw.status?.activeEndpoints?.some((e) => e.type === 'tunnel' && e.nodeName === this.opts.nodeName);
    if (!active && connections.length > 0) return;
    if (!connectionsWriteDue({ written: gw.status?.connections ?? [], next: connections, lastWriteMs: this.lastConnectionsWrite, nowMs: Date.now(), force })) return;
    await this.opts.kube.patch(RESOURCES.gateways, { name: gw.metadata.name, subresource: 'status' }, { status: { connections } }, 'merge', { fieldManager: FIELD_MANAGER });
    this.lastConnectionsWrite = Date.now();
  }

}

