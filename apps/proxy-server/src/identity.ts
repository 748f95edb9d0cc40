import { NODE_ORGANIZATION, activeProxyServerGateway, proxyServerGateways, proxyServingSans, servingCommonName, type Gateway } from '@raven/api-types';
import type { CertificateSpec } from '@raven/node-certs';
import type { ClusterView } from './cluster-view.ts';

/**
 * The serving certificate this proxy-server requests: CN system:node:<node>, O system:nodes, and the SANs the CSR
 * approver allows (proxyServingSans, the one rule both sides use). Undefined until its own Node is known, and while
 * the node may not hold it.
 */
export function servingSpec(nodeName: string, view: ClusterView, namespace: string): CertificateSpec | undefined {
  const me = view.node(nodeName);
  // The approver's rule: only a proxy endpoint of an exposed Gateway may hold it, so nobody else asks (and is denied).
  if (!me || !mayHoldServingIdentity(nodeName, view)) return undefined;
  const sans = proxyServingSans({
    node: { name: nodeName, internalIPs: me.internalIPs, externalIPs: me.externalIPs }, gateways: view.gateways(), namespace,
    claimedByOtherNode: (ip) => view.nodesWithAddress(ip).some((n) => n.metadata.name !== nodeName),
  });
  return { commonName: servingCommonName(nodeName), organizations: [NODE_ORGANIZATION], ...sans };
}

/** The Gateway this proxy-server serves for: the one electing it as proxy endpoint, and none once it is stopping. */
export function servedGateway(nodeName: string, gateways: readonly Gateway[], stopping: boolean): Gateway | undefined {
  return stopping ? undefined : activeProxyServerGateway(nodeName, gateways);
}

/** Whether this node may hold a proxy-server serving certificate now: it is listed as a proxy endpoint of an exposed Gateway. */
export function mayHoldServingIdentity(nodeName: string, view: Pick<ClusterView, 'gateways'>): boolean {
  return proxyServerGateways(nodeName, view.gateways()).length > 0;
}
