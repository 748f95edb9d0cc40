import { LABELS, type Gateway } from '@raven/api-types';
import { activeTunnelNode } from './show.ts';
import type { Snapshot } from './snapshot.ts';

/** The cluster as domains and tunnels: what `graph` draws. Plain data; names are untrusted and escaped by each renderer. */
export interface Topology {
  domains: Domain[];
  links: Link[];
  /** Nodes that carry no Gateway label, or one naming a Gateway that does not exist. */
  unassigned: string[];
}

export interface Domain {
  gateway: string;
  exposed: boolean;
  underNAT: boolean;
  ready: 'True' | 'False' | 'Unknown';
  tunnelNode?: string;
  proxyNodes: string[];
  members: string[];
  /** Other domains' NAT↔NAT traffic passes through this one. */
  relay: boolean;
}

export type LinkStatus = 'Connected' | 'Connecting' | 'Error' | 'Unknown';

export interface Link {
  /** The two Gateways, in name order. */
  a: string;
  b: string;
  status: LinkStatus;
  relayedVia?: string;
  rtt?: string;
  /** One line per side that reported it. */
  reports: string[];
}

const SEVERITY: Record<LinkStatus, number> = { Connected: 0, Unknown: 1, Connecting: 2, Error: 3 };

export function buildTopology(s: Pick<Snapshot, 'gateways' | 'nodes'>): Topology {
  const gateways = [...s.gateways].sort((x, y) => (x.metadata.name < y.metadata.name ? -1 : 1));
  const names = new Set(gateways.map((g) => g.metadata.name));
  const members = new Map<string, string[]>();
  const unassigned: string[] = [];
  for (const n of [...s.nodes].sort((x, y) => (x.name < y.name ? -1 : 1))) {
    const label = n.labels[LABELS.gateway];
    if (label && names.has(label)) members.set(label, [...(members.get(label) ?? []), n.name]);
    else unassigned.push(n.name);
  }
  const links = new Map<string, Link>();
  const relays = new Set<string>();
  for (const gw of gateways) {
    for (const c of gw.status?.connections ?? []) {
      if (c.gateway === gw.metadata.name) continue;
      const [a, b] = [gw.metadata.name, c.gateway].sort() as [string, string];
      const key = JSON.stringify([a, b]);
      const link = links.get(key) ?? { a, b, status: 'Connected' as LinkStatus, reports: [] };
      if (link.reports.length === 0 || SEVERITY[c.status] > SEVERITY[link.status]) link.status = c.status;
      if (c.relayedVia) {
        link.relayedVia = c.relayedVia;
        relays.add(c.relayedVia);
      }
      link.rtt ??= c.latencyRTT?.average;
      link.reports.push(`${gw.metadata.name} → ${c.gateway}: ${c.status}${c.statusMessage ? ` (${c.statusMessage})` : ''}`);
      links.set(key, link);
    }
  }
  return {
    domains: gateways.map((gw) => domainOf(gw, members.get(gw.metadata.name) ?? [], relays.has(gw.metadata.name))),
    links: [...links.values()].sort((x, y) => (x.a + '\0' + x.b < y.a + '\0' + y.b ? -1 : 1)),
    unassigned,
  };
}

function domainOf(gw: Gateway, members: string[], relay: boolean): Domain {
  const ready = gw.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? 'Unknown';
  return {
    gateway: gw.metadata.name,
    exposed: !!gw.spec?.exposeType,
    underNAT: gw.spec?.endpoints?.[0]?.underNAT ?? false,
    ready,
    tunnelNode: activeTunnelNode(gw),
    proxyNodes: (gw.status?.activeEndpoints ?? []).filter((e) => e.type === 'proxy').map((e) => e.nodeName),
    members,
    relay,
  };
}
