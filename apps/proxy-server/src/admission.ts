import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { nodeOfProxyClientCommonName } from '@raven/api-types';
import type { AgentIdentifiers } from '@raven/tunnel-protocol';
import { domainKeyOf, type ClusterView, type DomainKey } from './topology.ts';

export class AdmissionError extends Error {
  override readonly name = 'AdmissionError';
  constructor(readonly reason: 'no-certificate' | 'bad-identity' | 'unknown-node' | 'foreign-claim', message: string) {
    super(message);
  }
}

export interface AdmittedClient {
  node: string;
  domain: DomainKey;
}

/**
 * Admits a proxy-client by its verified certificate (CN raven:proxy-client:<node>): the node must exist, and the
 * client serves that node's domain only: every host/IP it advertises must be a member of that domain, and a
 * default route (serve anything) is never accepted. Routing later uses the domain computed here, not the claims.
 */
export function admitClient(peerCertificate: PeerCertificate | undefined, identifiers: AgentIdentifiers, view: ClusterView): AdmittedClient {
  const cn = peerCertificate?.subject?.CN;
  if (!peerCertificate || !cn) throw new AdmissionError('no-certificate', 'no verified client certificate');
  const commonName = Array.isArray(cn) ? undefined : cn;
  const node = commonName ? nodeOfProxyClientCommonName(commonName) : undefined;
  if (!node) throw new AdmissionError('bad-identity', `certificate CN ${JSON.stringify(cn)} does not name a node (want raven:proxy-client:<node>)`);
  const info = view.node(node);
  if (!info) throw new AdmissionError('unknown-node', `node ${node} does not exist`);
  const domain = domainKeyOf(info);
  const members = view.domainMembers(domain);
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
