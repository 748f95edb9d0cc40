import { section, table } from './render.ts';
import type { ShowView } from './show.ts';

const age = (s: number | null) => (s === null ? '-' : `${s}s`);

export function renderShow(view: ShowView): string {
  const parts = [
    section('GATEWAYS', view.gateways.length === 0 ? 'No Gateways.\n' : table(
      ['name', 'expose', 'nat', 'active endpoints', 'ready', 'degraded', 'members', 'message'],
      view.gateways.map((g) => [g.name, g.exposeType, g.underNAT ? 'yes' : 'no', g.activeEndpoints.join(', ') || '-', g.ready, g.degraded, g.members, g.message]),
    )),
    section('NODES', view.nodes.length === 0 ? 'No Nodes.\n' : table(
      ['gateway', 'node', 'role', 'internal ip', 'ready'],
      view.nodes.map((n) => [n.gateway, n.name, n.role, n.internalIP, n.ready]),
    )),
    section('CONNECTIONS', view.connections.length === 0 ? 'No connections reported (agents publish them in Gateway status.connections).\n' : table(
      ['gateway', 'node', 'peer gateway', 'peer node', 'status', 'endpoint', 'rtt', 'relayed via', 'message'],
      view.connections.map((c) => [c.gateway, c.node, c.peerGateway, c.peerNode, c.status, c.endpoint, c.rtt, c.relayedVia, c.message]),
    )),
    section('HEARTBEATS', view.heartbeats.length === 0 ? 'No heartbeat Leases.\n' : table(
      ['lease', 'component', 'holder', 'age', 'duration', 'fresh'],
      view.heartbeats.map((h) => [h.lease, h.component, h.holder, age(h.ageSeconds), age(h.durationSeconds), h.fresh ? 'yes' : 'NO']),
    )),
    section('COMPONENTS', view.components.length === 0 ? 'No Raven components found.\n' : table(
      ['component', 'instance', 'node', 'version', 'status'],
      view.components.map((c) => [c.component, c.instance, c.node, c.version, c.status]),
    )),
  ];
  return parts.join('').trimEnd() + '\n';
}
