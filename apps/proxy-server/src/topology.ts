import { z } from 'zod';
import { LABELS, proxyReachablePorts, type Gateway } from '@raven/api-types';

/** A Node as the proxy sees it: its Gateway (label) and addresses. */
export interface NodeInfo {
  metadata: { name: string; resourceVersion?: string };
  gateway?: string;
  internalIPs: string[];
  externalIPs: string[];
}

const rawNodeSchema = z.object({
  metadata: z.object({ name: z.string(), resourceVersion: z.string().optional(), labels: z.record(z.string(), z.string()).optional() }),
  status: z.object({ addresses: z.array(z.object({ type: z.string(), address: z.string() })).optional() }).optional(),
});

export function toNodeInfo(raw: unknown): NodeInfo {
  const node = rawNodeSchema.parse(raw);
  const addresses = node.status?.addresses ?? [];
  return {
    metadata: { name: node.metadata.name, resourceVersion: node.metadata.resourceVersion },
    gateway: node.metadata.labels?.[LABELS.gateway] || undefined,
    internalIPs: addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address),
    externalIPs: addresses.filter((a) => a.type === 'ExternalIP').map((a) => a.address),
  };
}

/**
 * A network domain: the nodes of one Gateway, or a node in no Gateway on its own (such a node runs its own
 * proxy-client). Domain keys are `gw/<gateway>` and `node/<node>`.
 */
export type DomainKey = string;
export const domainKeyOf = (node: NodeInfo): DomainKey => (node.gateway ? `gw/${node.gateway}` : `node/${node.metadata.name}`);

/** Read access to the cluster state routing needs (informer caches in the app; plain arrays in unit tests). */
export interface ClusterView {
  node(name: string): NodeInfo | undefined;
  nodesWithInternalIP(ip: string): NodeInfo[];
  /** Nodes listing `ip` among their addresses (InternalIP or ExternalIP). */
  nodesWithAddress(ip: string): NodeInfo[];
  domainMembers(key: DomainKey): NodeInfo[];
  gateway(name: string): Gateway | undefined;
  gateways(): Gateway[];
  /** Target ports reachable by scheme (see proxyReachablePorts). */
  ports(): { http: Set<number>; https: Set<number> };
}

/** A ClusterView over plain arrays. */
export class StaticClusterView implements ClusterView {
  private readonly nodesByName: Map<string, NodeInfo>;
  private readonly gatewaysByName: Map<string, Gateway>;

  constructor(nodes: NodeInfo[], gateways: Gateway[]) {
    this.nodesByName = new Map(nodes.map((n) => [n.metadata.name, n]));
    this.gatewaysByName = new Map(gateways.map((g) => [g.metadata.name, g]));
  }

  node(name: string): NodeInfo | undefined {
    return this.nodesByName.get(name);
  }

  nodesWithInternalIP(ip: string): NodeInfo[] {
    return [...this.nodesByName.values()].filter((n) => n.internalIPs.includes(ip));
  }

  nodesWithAddress(ip: string): NodeInfo[] {
    return [...this.nodesByName.values()].filter((n) => n.internalIPs.includes(ip) || n.externalIPs.includes(ip));
  }

  domainMembers(key: DomainKey): NodeInfo[] {
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
