import { DEFAULT_ENDPOINT_PORT, LABELS, type Endpoint, type Gateway } from '@raven/api-types';
import type { LeaseView, NodeSnapshot, PodView, Snapshot } from './snapshot.ts';

/** What `ravenctl show` prints: plain data, rendered as tables or serialized as JSON/YAML. */
export interface ShowView {
  gateways: GatewayRow[];
  nodes: NodeRow[];
  connections: ConnectionRow[];
  heartbeats: HeartbeatRow[];
  components: ComponentRow[];
}

export interface GatewayRow {
  name: string;
  exposeType: string;
  underNAT: boolean;
  activeEndpoints: string[];
  ready: string;
  degraded: string;
  message: string;
  members: number;
}

export type NodeRole = 'active-tunnel' | 'active-proxy' | 'active-tunnel+proxy' | 'candidate' | 'member';

export interface NodeRow {
  name: string;
  gateway: string;
  role: NodeRole;
  internalIP: string;
  ready: string;
}

export interface ConnectionRow {
  gateway: string;
  node: string;
  peerGateway: string;
  peerNode: string;
  status: string;
  endpoint: string;
  rtt: string;
  relayedVia: string;
  message: string;
}

export interface HeartbeatRow {
  lease: string;
  component: string;
  holder: string;
  ageSeconds: number | null;
  durationSeconds: number | null;
  fresh: boolean;
}

export interface ComponentRow {
  component: string;
  instance: string;
  node: string;
  version: string;
  status: string;
}

const NONE = '-';

export function endpointLabel(e: Endpoint): string {
  const port = e.port ?? DEFAULT_ENDPOINT_PORT[e.type];
  const pub = e.publicIP ? ` public ${e.publicIP}${e.publicPort ? `:${e.publicPort}` : ''}` : '';
  return `${e.type}/${e.nodeName}:${port}${pub}`;
}

function conditionOf(gw: Gateway, type: string) {
  return gw.status?.conditions?.find((c) => c.type === type);
}

export function gatewayRows(gateways: readonly Gateway[]): GatewayRow[] {
  return [...gateways].sort(byName).map((gw) => {
    const ready = conditionOf(gw, 'Ready');
    const degraded = conditionOf(gw, 'Degraded');
    return {
      name: gw.metadata.name,
      exposeType: gw.spec?.exposeType || NONE,
      underNAT: gw.spec?.endpoints?.[0]?.underNAT ?? false,
      activeEndpoints: (gw.status?.activeEndpoints ?? []).map(endpointLabel),
      ready: ready ? `${ready.status} (${ready.reason})` : 'Unknown',
      degraded: degraded ? `${degraded.status} (${degraded.reason})` : 'Unknown',
      message: ready?.status === 'True' ? (degraded?.status === 'True' ? degraded.message : '') : ready?.message ?? 'no status from gateway-pickup yet',
      members: gw.status?.nodes?.length ?? 0,
    };
  });
}

export function roleOf(node: string, gw: Gateway | undefined): NodeRole {
  if (!gw) return 'member';
  const active = new Set((gw.status?.activeEndpoints ?? []).filter((e) => e.nodeName === node).map((e) => e.type));
  if (active.has('tunnel') && active.has('proxy')) return 'active-tunnel+proxy';
  if (active.has('tunnel')) return 'active-tunnel';
  if (active.has('proxy')) return 'active-proxy';
  return gw.spec?.endpoints?.some((e) => e.nodeName === node) ? 'candidate' : 'member';
}

/** Nodes grouped by network domain (their Gateway label), gateways first within a domain. */
export function nodeRows(nodes: readonly NodeSnapshot[], gateways: readonly Gateway[]): NodeRow[] {
  const byGateway = new Map(gateways.map((g) => [g.metadata.name, g]));
  const rank: Record<NodeRole, number> = { 'active-tunnel+proxy': 0, 'active-tunnel': 1, 'active-proxy': 2, candidate: 3, member: 4 };
  return nodes.map((n) => {
    const gateway = n.labels[LABELS.gateway] ?? '';
    return { name: n.name, gateway: gateway || NONE, role: roleOf(n.name, byGateway.get(gateway)), internalIP: n.internalIP ?? NONE, ready: n.ready };
  }).sort((a, b) => cmp(a.gateway === NONE ? '\uffff' : a.gateway, b.gateway === NONE ? '\uffff' : b.gateway) || rank[a.role] - rank[b.role] || cmp(a.name, b.name));
}

export function connectionRows(gateways: readonly Gateway[]): ConnectionRow[] {
  return [...gateways].sort(byName).flatMap((gw) => (gw.status?.connections ?? []).map((c) => ({
    gateway: gw.metadata.name,
    node: activeTunnelNode(gw) ?? NONE,
    peerGateway: c.gateway,
    peerNode: c.nodeName,
    status: c.status,
    endpoint: c.endpoint ?? NONE,
    rtt: c.latencyRTT ? `${c.latencyRTT.last} (avg ${c.latencyRTT.average})` : NONE,
    relayedVia: c.relayedVia ?? NONE,
    // Why a NATed peer is relayed (NAT traversal) is the message when nothing is wrong.
    message: c.statusMessage ?? (c.relayReason ? `relayed: ${c.relayReason}` : ''),
  })).sort((a, b) => cmp(a.peerGateway, b.peerGateway)));
}

export function activeTunnelNode(gw: Gateway): string | undefined {
  return gw.status?.activeEndpoints?.find((e) => e.type === 'tunnel')?.nodeName;
}

export function leaseAgeSeconds(lease: LeaseView, now: number): number | undefined {
  return lease.renewTime === undefined ? undefined : Math.max(0, (now - lease.renewTime) / 1000);
}

export function isLeaseFresh(lease: LeaseView, now: number): boolean {
  const age = leaseAgeSeconds(lease, now);
  return age !== undefined && lease.durationSeconds !== undefined && age <= lease.durationSeconds;
}

export function heartbeatRows(leases: readonly LeaseView[], now: number): HeartbeatRow[] {
  return [...leases].sort(byLeaseName).map((l) => {
    const age = leaseAgeSeconds(l, now);
    return {
      lease: l.name, component: l.component ?? NONE, holder: l.holder ?? NONE,
      ageSeconds: age === undefined ? null : round1(age), durationSeconds: l.durationSeconds ?? null, fresh: isLeaseFresh(l, now),
    };
  });
}

/** The tag of an image reference (`repo:tag`, `repo@sha256:...`, `host:5000/repo:tag`), or `latest` as the runtime reads it. */
export function imageVersion(image: string): string {
  const at = image.indexOf('@');
  if (at >= 0) return image.slice(at + 1, at + 20);
  const lastSlash = image.lastIndexOf('/');
  const colon = image.indexOf(':', lastSlash + 1);
  return colon >= 0 ? image.slice(colon + 1) : 'latest';
}

/**
 * Which Raven components run, with their versions: Pods (labelled `app.kubernetes.io/part-of=raven`) carry them in
 * their image tags or `app.kubernetes.io/version`. Processes that run outside Pods are known only by their
 * heartbeat Leases and the leader Lease, so their version shows as unknown.
 */
/** Nodes where a proxy heartbeat means proxy-server: proxy endpoints of exposed Gateways (elsewhere it is proxy-client). */
export function proxyServerNodes(gateways: readonly Gateway[]): Set<string> {
  return new Set(gateways.filter((g) => g.spec?.exposeType).flatMap((g) => (g.spec?.endpoints ?? []).filter((e) => e.type === 'proxy').map((e) => e.nodeName)));
}

export function componentRows(pods: readonly PodView[], leases: readonly LeaseView[], leader: LeaseView | undefined, now: number, serverNodes: ReadonlySet<string> = new Set()): ComponentRow[] {
  const rows: ComponentRow[] = pods.map((p) => ({
    component: p.component, instance: `pod/${p.name}`, node: p.nodeName ?? NONE,
    version: p.versionLabel ?? ([...new Set(p.images.map(imageVersion))].join(',') || 'unknown'), status: p.phase ?? 'Unknown',
  }));
  const podNodes = new Set(pods.map((p) => `${p.component}/${p.nodeName}`));
  if (leader && !pods.some((p) => p.component === 'gateway-pickup')) {
    rows.push({ component: 'gateway-pickup', instance: `leader ${leader.holder ?? NONE}`, node: NONE, version: 'unknown', status: isLeaseFresh(leader, now) ? 'leading' : 'leader lease expired' });
  }
  for (const l of leases) {
    if (!l.holder || (l.component !== 'tunnel' && l.component !== 'proxy')) continue;
    const component = l.component === 'tunnel' ? 'tunnel-agent' : serverNodes.has(l.holder) ? 'proxy-server' : 'proxy-client';
    const covered = podNodes.has(`${component}/${l.holder}`);
    if (covered) continue;
    rows.push({ component, instance: `lease/${l.name}`, node: l.holder, version: 'unknown', status: isLeaseFresh(l, now) ? 'heartbeating' : 'heartbeat stale' });
  }
  return rows.sort((a, b) => cmp(a.component, b.component) || cmp(a.node, b.node) || cmp(a.instance, b.instance));
}

export function buildShowView(s: Snapshot): ShowView {
  return {
    gateways: gatewayRows(s.gateways),
    nodes: nodeRows(s.nodes, s.gateways),
    connections: connectionRows(s.gateways),
    heartbeats: heartbeatRows(s.heartbeats, s.takenAt),
    components: componentRows(s.pods, s.heartbeats, s.pickupLeader, s.takenAt, proxyServerNodes(s.gateways)),
  };
}

const round1 = (n: number) => Math.round(n * 10) / 10;
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const byName = (a: Gateway, b: Gateway) => cmp(a.metadata.name, b.metadata.name);
const byLeaseName = (a: LeaseView, b: LeaseView) => cmp(a.name, b.name);
