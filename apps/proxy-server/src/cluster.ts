import { gatewayV1beta1Schema, proxyReachablePorts, toNodeView, type Gateway, type NodeView } from '@raven/api-types';
import { Informer, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import { domainKeyOf, type ClusterView, type DomainKey } from './cluster-view.ts';

const INDEX = { domain: 'domain', ip: 'ip', address: 'address' } as const;

/** ClusterView over informer caches of Gateways and Nodes, indexed by domain and InternalIP. */
export class InformerClusterView implements ClusterView {
  readonly nodeInformer: Informer<NodeView>;
  readonly gatewayInformer: Informer<Gateway>;
  private gatewayList: Gateway[] | undefined;
  private portSets: { http: Set<number>; https: Set<number> } | undefined;
  private readonly listeners: Array<() => void> = [];

  constructor(kube: KubeClient, log: Logger, registry: Registry) {
    const common = { kube, log, registry, metricPrefix: 'raven_proxy_server' };
    this.nodeInformer = new Informer<NodeView>({ ...common, type: RESOURCES.nodes, transform: toNodeView });
    this.nodeInformer.addIndex(INDEX.domain, (n) => [domainKeyOf(n)]);
    this.nodeInformer.addIndex(INDEX.ip, (n) => n.internalIPs);
    this.nodeInformer.addIndex(INDEX.address, (n) => [...new Set([...n.internalIPs, ...n.externalIPs])]);
    this.gatewayInformer = new Informer<Gateway>({ ...common, type: RESOURCES.gateways, transform: (raw) => gatewayV1beta1Schema.parse(raw) });
    const gatewaysChanged = () => {
      this.gatewayList = undefined;
      this.portSets = undefined;
      this.changed();
    };
    this.gatewayInformer.on({ add: gatewaysChanged, update: gatewaysChanged, delete: gatewaysChanged });
    const relevant = (a: NodeView, b: NodeView) => a.gateway !== b.gateway || a.internalIPs.join() !== b.internalIPs.join() || a.externalIPs.join() !== b.externalIPs.join();
    this.nodeInformer.on({ add: () => this.changed(), delete: () => this.changed(), update: (a, b) => relevant(a, b) && this.changed() });
  }

  start(): void {
    this.nodeInformer.start();
    this.gatewayInformer.start();
  }

  async stop(): Promise<void> {
    await Promise.all([this.nodeInformer.stop(), this.gatewayInformer.stop()]);
  }

  synced(): boolean {
    return this.nodeInformer.hasSynced() && this.gatewayInformer.hasSynced();
  }

  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([this.nodeInformer.waitForSync(signal), this.gatewayInformer.waitForSync(signal)]);
  }

  /** Called after any change that can move an election, a domain, an address or a port list. */
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  node(name: string): NodeView | undefined {
    return this.nodeInformer.get(name);
  }

  nodesWithInternalIP(ip: string): NodeView[] {
    return this.nodeInformer.byIndex(INDEX.ip, ip);
  }

  nodesWithAddress(ip: string): NodeView[] {
    return this.nodeInformer.byIndex(INDEX.address, ip);
  }

  domainMembers(key: DomainKey): NodeView[] {
    return this.nodeInformer.byIndex(INDEX.domain, key);
  }

  gateway(name: string): Gateway | undefined {
    return this.gatewayInformer.get(name);
  }

  gateways(): Gateway[] {
    return (this.gatewayList ??= this.gatewayInformer.list());
  }

  ports(): { http: Set<number>; https: Set<number> } {
    return (this.portSets ??= proxyReachablePorts(this.gateways()));
  }

  private changed(): void {
    for (const listener of this.listeners) listener();
  }
}
