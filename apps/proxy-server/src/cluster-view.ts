import { proxyReachablePorts, type Gateway, type NodeView } from '@raven/api-types';

/**
 * A network domain: the nodes of one Gateway, or a node in no Gateway on its own (such a node runs its own
 * proxy-client). Domain keys are `gw/<gateway>` and `node/<node>`.
 */
export type DomainKey = string;
export const domainKeyOf = (node: NodeView): DomainKey => (node.gateway ? `gw/${node.gateway}` : `node/${node.metadata.name}`);

/** Read access to the cluster state routing needs (informer caches in the app; plain arrays in unit tests). */
export interface ClusterView {
  node(name: string): NodeView | undefined;
  nodesWithInternalIP(ip: string): NodeView[];
  /** Nodes listing `ip` among their addresses (InternalIP or ExternalIP). */
  nodesWithAddress(ip: string): NodeView[];
  domainMembers(key: DomainKey): NodeView[];
  gateway(name: string): Gateway | undefined;
  gateways(): Gateway[];
  /** Target ports reachable by scheme (see proxyReachablePorts). */
  ports(): { http: Set<number>; https: Set<number> };
}

/** A ClusterView over plain arrays. */
export class StaticClusterView implements ClusterView {
  private readonly nodesByName: Map<string, NodeView>;
  private readonly gatewaysByName: Map<string, Gateway>;

  constructor(nodes: NodeView[], gateways: Gateway[]) {
    this.nodesByName = new Map(nodes.map((n) => [n.metadata.name, n]));
    this.gatewaysByName = new Map(gateways.map((g) => [g.metadata.name, g]));
  }

  node(name: string): NodeView | undefined {
    return this.nodesByName.get(name);
  }

  nodesWithInternalIP(ip: string): NodeView[] {
    return [...this.nodesByName.values()].filter((n) => n.internalIPs.includes(ip));
  }

  nodesWithAddress(ip: string): NodeView[] {
    return [...this.nodesByName.values()].filter((n) => n.internalIPs.includes(ip) || n.externalIPs.includes(ip));
  }

  domainMembers(key: DomainKey): NodeView[] {
    return [...this.nodesByName.values()].filter((n) => domainKeyOf(n) === key);
  }

  gateway(name: string): Gateway | undefined {
    return this.gatewaysByName.get(name);
  }

  gateways(): Gateway[] {
    return [...this.gatewaysByName.values()];
  }

  ports(): { http: Set<number>; https: Set<number> } {
    return proxyReachablePorts(this.gateways());
  }
}
