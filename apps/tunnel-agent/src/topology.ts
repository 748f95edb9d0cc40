import { isIPv4 } from 'node:net';
import { ENDPOINT_CONFIG_KEYS, endpointPort, formatEndpoint, parseIp, type Endpoint, type Gateway } from '@raven/api-types';

/** A gateway that has an active tunnel endpoint, i.e. a domain reachable over L3. */
export interface Domain {
  gateway: Gateway;
  name: string;
  /** The active tunnel endpoint (Replicas ≤ 1, so at most one). */
  endpoint: Endpoint;
  /** Pod subnets (and extra allowed CIDRs) of the domain's nodes. */
  subnets: string[];
  /** Private IPs of the domain's nodes, by node name. */
  nodeIPs: Map<string, string>;
  /** Names of the domain's nodes (status.nodes): the members pickup saw labelled into the Gateway. */
  members: Set<string>;
  exposed: boolean;
}

export function domainOf(gateway: Gateway): Domain | undefined {
  const endpoint = gateway.status?.activeEndpoints?.find((e) => e.type === 'tunnel');
  if (!endpoint || endpoint.config?.[ENDPOINT_CONFIG_KEYS.l3Tunnel] === 'false') return undefined;
  const nodes = gateway.status?.nodes ?? [];
  return {
    gateway,
    name: gateway.metadata.name,
    endpoint,
    subnets: uniqueSorted(nodes.flatMap((n) => n.subnets ?? []).filter((s) => s !== '')),
    nodeIPs: new Map(nodes.filter((n) => n.privateIP).map((n) => [n.nodeName, n.privateIP!])),
    members: new Set(nodes.map((n) => n.nodeName)),
    exposed: (gateway.spec?.exposeType ?? '') !== '',
  };
}

export const uniqueSorted = (values: Iterable<string>): string[] => [...new Set(values)].sort();

const underNAT = (d: Domain) => d.endpoint.underNAT === true;

/**
 * The central gateway relays NAT↔NAT traffic: a public (not underNAT) gateway, preferably an exposed one, the
 * first by name among equals, so every agent picks the same one without talking to each other.
 */
export function pickCentral(domains: readonly Domain[]): Domain | undefined {
  const publicOnes = domains.filter((d) => !underNAT(d)).sort((a, b) => Number(b.exposed) - Number(a.exposed) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return publicOnes[0];
}

/** Where a peer can be dialled: its public address and port, when it is not behind NAT and has a public IP. */
export function peerEndpoint(d: Domain): string | undefined {
  const ip = parseIp(d.endpoint.publicIP);
  if (underNAT(d) || !ip) return undefined;
  return formatEndpoint(ip, d.endpoint.publicPort ?? endpointPort(d.endpoint));
}

export const hostPrefix = (ip: string): string => (isIPv4(ip) ? `${ip}/32` : `${ip}/128`);

/**
 * How this domain reaches each other domain: directly (a WireGuard peer), or relayed through the central
 * gateway when both ends are behind NAT. Unreachable domains (NAT↔NAT without a central gateway) are left out.
 */
export interface Reachability {
  direct: Domain[];
  /** Domains reached through `central`, keyed by nothing: all go into the central peer's allowed IPs. */
  relayed: Domain[];
  central?: Domain;
  unreachable: Domain[];
}

export function reachability(local: Domain, domains: readonly Domain[]): Reachability {
  const central = pickCentral(domains);
  const result: Reachability = { direct: [], relayed: [], central, unreachable: [] };
  for (const d of domains) {
    if (d.name === local.name) continue;
    if (!underNAT(local) || !underNAT(d)) result.direct.push(d);
    else if (central && central.name !== local.name) result.relayed.push(d);
    else result.unreachable.push(d);
  }
  return result;
}
