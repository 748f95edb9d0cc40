import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { nodeOfProxyClientCommonName, proxyClientRole, type NodeView } from '@raven/api-types';
import type { AgentIdentifiers } from '@raven/tunnel-protocol';
import type { ClusterView, DomainKey } from './cluster-view.ts';

export class AdmissionError extends Error {
  override readonly name = 'AdmissionError';
  constructor(readonly reason: 'no-certificate' | 'bad-identity' | 'unknown-node' | 'not-elected' | 'foreign-claim', message: string) {
    super(message);
  }
}

export interface AdmittedClient {
  node: string;
  domain: DomainKey;
}

/**
 * The domain a proxy-client on `node` may serve now (proxyClientRole): its Gateway's while it is an elected proxy
 * endpoint there, itself alone when it is in no Gateway; otherwise an AdmissionError. Checked at admission, at
 * every dial and at every change of the cluster view.
 */
export function servedDomain(node: NodeView, view: ClusterView): DomainKey {
  const role = proxyClientRole({ name: node.metadata.name, gateway: node.gateway }, view.gateways());
  if (role.serves === 'self') return `node/${node.metadata.name}`;
  if (role.serves === 'domain') return `gw/${role.gateway}`;
  throw new AdmissionError('not-elected', `node ${node.metadata.name} may not serve a domain: ${role.reason}`);
}

/**
 * Admits a proxy-client by its verified certificate (CN raven:proxy-client:<node>): the node must exist and serve a
 * domain (servedDomain), and every host/IP it advertises must be a member of that domain; a default route (serve
 * anything) is never accepted. Routing later uses the domain computed here, not the claims.
 */
export function admitClient(peerCertificate: PeerCertificate | undefined, identifiers: AgentIdentifiers, view: ClusterView): AdmittedClient {
  const cn = peerCertificate?.subject?.CN;
  if (!peerCertificate || !cn) throw new AdmissionError('no-certificate', 'no verified client certificate');
  const commonName = Array.isArray(cn) ? undefined : cn;
  const node = commonName ? nodeOfProxyClientCommonName(commonName) : undefined;
  if (!node) throw new AdmissionError('bad-identity', `certificate CN ${JSON.stringify(cn)} does not name a node (want raven:proxy-client:<node>)`);
  const info = view.node(node);
  if (!info) throw new AdmissionError('unknown-node', `node ${node} does not exist`);
  const domain = servedDomain(info, view);
  const members = domain.startsWith('node/') ? [info] : view.domainMembers(domain);
  const names = new Set(members.map((m) => m.metadata.name));
  const ips = new Set(members.flatMap((m) => m.internalIPs));
  const foreign = [
    ...identifiers.host.filter((h) => !names.has(h) && !(isIP(h) && ips.has(h))),
    ...identifiers.ipv4.filter((ip) => !ips.has(ip)),
    ...identifiers.ipv6.filter((ip) => !ips.has(ip)),
    ...identifiers.cidr,
    ...(identifiers.defaultRoute ? ['default-route'] : []),
  ];
  if (foreign.length > 0) {
    throw new AdmissionError('foreign-claim', `client of node ${node} (domain ${domain}) claims ${foreign.slice(0, 5).join(', ')}${foreign.length > 5 ? ', ...' : ''} outside its domain`);
  }
  return { node, domain };
}

/** The admitted client may still serve `domain` (its node exists and still serves exactly that domain). */
export function stillServes(client: AdmittedClient, view: ClusterView): boolean {
  const info = view.node(client.node);
  if (!info) return false;
  try {
    return servedDomain(info, view) === client.domain;
  } catch {
    return false;
  }
}
