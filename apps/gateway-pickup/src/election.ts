import { isIPv4 } from 'node:net';
import {
  ANNOTATIONS, ENDPOINT_CONFIG_KEYS, ENDPOINT_TYPES, cidrContains, cidrProblem, cidrsOverlap, endpointPort, parseCidr, parseIp,
  type Condition, type Endpoint, type EndpointType, type Gateway, type GatewayStatus, type NodeInfo, type NodeView,
} from '@raven/api-types';
import type { ModeSwitches } from './model.ts';

/** How many endpoints of `type` a Gateway asks for: 0 when its mode is off or it lists none of that type. */
export function requestedEndpoints(gateway: Gateway, modes: ModeSwitches, type: EndpointType): number {
  const spec = gateway.spec;
  const requested = (type === 'proxy' ? spec?.proxyConfig?.Replicas : spec?.tunnelConfig?.Replicas) ?? 1;
  const listed = (spec?.endpoints ?? []).some((e) => e.type === type);
  return modes[TYPE_ENABLED[type]] && listed ? requested : 0;
}

/**
 * Why an endpoint can or cannot be elected right now. `soft` marks a verdict from the heartbeat alone (the Node is
 * Ready): such an endpoint is never elected beside a healthy one, but an active one stays when no candidate of its type
 * is healthy, so a hiccup that stops every renewal never leaves a domain with no gateway at all.
 */
export type Availability = { available: true } | { available: false; reason: string; soft?: boolean };

export interface ElectionInput {
  gateway: Gateway;
  /** Nodes labelled `raven.openyurt.io/gateway=<this gateway>`. */
  members: readonly NodeView[];
  modes: ModeSwitches;
  /** Heartbeat/Ready verdict for a member node and endpoint type. */
  availability: (node: NodeView, type: EndpointType) => Availability;
  /** Confirmed Calico block CIDRs of a node, when Calico IPAM is in use. */
  calicoBlocks: (node: string) => readonly string[] | undefined;
  /** The public IP of an endpoint when the spec gives none (LoadBalancer ingress, admin annotation, ...). */
  discoveredPublicIP: (node: NodeView, type: EndpointType) => string | undefined;
  /**
   * What an extra allowed source CIDR must not cover: node and public addresses (IPs) and the Service range and the
   * like (CIDRs). Called only when the Gateway has the annotation.
   */
  protectedAddresses?: () => { ips: readonly string[]; cidrs: readonly string[] };
  now: Date;
}

/** Extra allowed source CIDRs narrower than this are accepted; wider ones would capture whole networks. */
export const MIN_EXTRA_CIDR_PREFIX = 8;
export const EXTRA_CIDRS_CONDITION = 'ExtraAllowedSourceCIDRsAccepted';

export interface ElectionResult {
  status: Pick<GatewayStatus, 'activeEndpoints' | 'nodes' | 'conditions'>;
  elected: Endpoint[];
  lost: Endpoint[];
  /** One sentence per refused entry of the extra-allowed-source-cidrs annotation. */
  refusedExtraCIDRs: string[];
}

const TYPE_ENABLED: Record<EndpointType, keyof ModeSwitches> = { proxy: 'l7', tunnel: 'l3' };
const CONFIG_KEY: Record<EndpointType, string> = { proxy: ENDPOINT_CONFIG_KEYS.l7Proxy, tunnel: ENDPOINT_CONFIG_KEYS.l3Tunnel };

export const endpointId = (e: Pick<Endpoint, 'nodeName' | 'type'>) => `${e.type}/${e.nodeName}`;
const byNodeThenType = (a: Endpoint, b: Endpoint) => (a.nodeName < b.nodeName ? -1 : a.nodeName > b.nodeName ? 1 : a.type < b.type ? -1 : a.type > b.type ? 1 : 0);

/**
 * Upstream's election, made deterministic: candidates are the spec endpoints of the right type whose node is a
 * member and available; endpoints already active stay (stickiness), in spec order when more are sticky than
 * Replicas; the rest fill in spec order; nothing is elected for a mode raven-cfg disables (or without raven-cfg).
 * Active endpoints are copied from the spec (fresh publicIP and config) and get `enable-l7-proxy`/`enable-l3-tunnel`.
 */
export function planGatewayStatus(input: ElectionInput): ElectionResult {
  const { gateway, members, modes } = input;
  const spec = gateway.spec;
  const memberByName = new Map(members.map((n) => [n.metadata.name, n]));
  const previouslyActive = new Set((gateway.status?.activeEndpoints ?? []).map(endpointId));
  const active: Endpoint[] = [];
  const typeReports: Array<{ type: EndpointType; requested: number; elected: number; unavailable: string[] }> = [];

  for (const type of ENDPOINT_TYPES) {
    const requested = requestedEndpoints(gateway, modes, type);
    if (requested === 0) continue;
    const ofType = (spec?.endpoints ?? []).filter((e) => e.type === type);
    const unavailable: string[] = [];
    const softlyUnavailable: Endpoint[] = [];
    const candidates = ofType.filter((e) => {
      const node = memberByName.get(e.nodeName);
      if (!node) {
        unavailable.push(`${e.nodeName} (not a member)`);
        return false;
      }
      const verdict = input.availability(node, type);
      if (!verdict.available) {
        unavailable.push(`${e.nodeName} (${verdict.reason})`);
        if (verdict.soft && previouslyActive.has(endpointId(e))) softlyUnavailable.push(e);
      }
      return verdict.available;
    });
    const sticky = candidates.filter((e) => previouslyActive.has(endpointId(e)));
    const fresh = candidates.filter((e) => !previouslyActive.has(endpointId(e)));
    // Kept only when nothing healthy is left: a dead replica never shares traffic with a live one.
    const chosen = (candidates.length > 0 ? [...sticky, ...fresh] : softlyUnavailable).slice(0, requested);
    for (const e of chosen) active.push(activeEndpoint(e, memberByName.get(e.nodeName)!, modes, input));
    typeReports.push({ type, requested, elected: chosen.length, unavailable });
  }
  active.sort(byNodeThenType);

  const nodes = members.map((n) => nodeInfo(n, input.calicoBlocks(n.metadata.name))).sort((a, b) => (a.nodeName < b.nodeName ? -1 : 1));
  const tunnel = active.find((e) => e.type === 'tunnel');
  const annotation = gateway.metadata.annotations?.[ANNOTATIONS.extraAllowedSourceCIDRs];
  const extra = annotation === undefined ? { accepted: [], refused: [] } : screenExtraCIDRs(annotation, input.protectedAddresses?.() ?? { ips: [], cidrs: [] });
  if (tunnel && extra.accepted.length > 0) {
    const info = nodes.find((n) => n.nodeName === tunnel.nodeName);
    if (info) info.subnets = [...new Set([...(info.subnets ?? []), ...extra.accepted])];
  }
  const conditions = conditionsFor(typeReports, modes, gateway.metadata.generation);
  if (annotation !== undefined) conditions.push(extraCIDRsCondition(extra.refused, gateway.metadata.generation));

  const activeIds = new Set(active.map(endpointId));
  const previous = gateway.status?.activeEndpoints ?? [];
  return {
    status: {
      activeEndpoints: active,
      nodes,
      conditions: mergeConditions(gateway.status?.conditions, conditions, input.now),
    },
    elected: active.filter((e) => !previouslyActive.has(endpointId(e))),
    lost: previous.filter((e) => !activeIds.has(endpointId(e))),
    refusedExtraCIDRs: extra.refused,
  };
}

/**
 * The annotation's entries that may be routed from this domain: each must be a CIDR (no host bits), no wider than
 * /8, and cover no node, public or Service address (or the whole tunnel underlay would be routed into the tunnel).
 * A refused entry is left out alone; the rest apply.
 */
export function screenExtraCIDRs(annotation: string, guard: { ips: readonly string[]; cidrs: readonly string[] }): { accepted: string[]; refused: string[] } {
  const accepted: string[] = [];
  const refused: string[] = [];
  const guardCidrs = guard.cidrs.map((c) => parseCidr(c)).filter((c) => c !== undefined);
  for (const entry of annotation.split(',').map((s) => s.trim()).filter(Boolean)) {
    const problem = cidrProblem(entry);
    const parsed = parseCidr(entry);
    if (problem || !parsed) {
      refused.push(`${problem ?? `"${entry}" is not a CIDR`}`);
      continue;
    }
    if (parsed.prefixLength < MIN_EXTRA_CIDR_PREFIX) {
      refused.push(`"${entry}" is wider than /${MIN_EXTRA_CIDR_PREFIX}`);
      continue;
    }
    const ip = guard.ips.find((a) => cidrContains(parsed, a));
    if (ip) {
      refused.push(`"${entry}" contains the node or public address ${ip}`);
      continue;
    }
    const range = guardCidrs.find((c) => cidrsOverlap(parsed, c));
    if (range) {
      refused.push(`"${entry}" overlaps the protected range ${range.cidr}`);
      continue;
    }
    accepted.push(entry);
  }
  return { accepted: [...new Set(accepted)], refused };
}

function extraCIDRsCondition(refused: readonly string[], generation?: number): ConditionDraft {
  const g = generation !== undefined ? { observedGeneration: generation } : {};
  if (refused.length === 0) return { type: EXTRA_CIDRS_CONDITION, status: 'True', reason: 'Accepted', message: `every entry of ${ANNOTATIONS.extraAllowedSourceCIDRs} is routed`, ...g };
  return { type: EXTRA_CIDRS_CONDITION, status: 'False', reason: 'Refused', message: `${ANNOTATIONS.extraAllowedSourceCIDRs}: refused ${refused.join('; ')}`.slice(0, 4096), ...g };
}

function activeEndpoint(e: Endpoint, node: NodeView, modes: ModeSwitches, input: ElectionInput): Endpoint {
  const publicIP = e.publicIP || input.discoveredPublicIP(node, e.type);
  return {
    ...e,
    port: endpointPort(e),
    ...(publicIP ? { publicIP } : {}),
    config: { ...e.config, [CONFIG_KEY[e.type]]: String(modes[TYPE_ENABLED[e.type]]) },
  };
}

// A kubelet writes its own Node's addresses: only IP literals are copied (IPv4 first: the vxlan underlay is IPv4).
const privateIPOf = (node: NodeView): string | undefined => {
  const ips = node.internalIPs.filter((ip) => !!parseIp(ip));
  return ips.find((ip) => isIPv4(ip)) ?? ips[0];
};

function nodeInfo(node: NodeView, calicoBlocks: readonly string[] | undefined): NodeInfo {
  const subnets = (node.calico && calicoBlocks && calicoBlocks.length > 0 ? [...calicoBlocks] : node.podCIDRs).filter((s) => !!parseCidr(s));
  return {
    nodeName: node.metadata.name,
    ...(privateIPOf(node) ? { privateIP: privateIPOf(node) } : {}),
    subnets,
  };
}

type ConditionDraft = Omit<Condition, 'lastTransitionTime'>;

function conditionsFor(reports: Array<{ type: EndpointType; requested: number; elected: number; unavailable: string[] }>, modes: ModeSwitches, generation?: number): ConditionDraft[] {
  const observedGeneration = generation;
  const describe = (r: (typeof reports)[number]) =>
    `${r.type}: ${r.elected} of ${r.requested} active${r.unavailable.length ? `; unavailable: ${r.unavailable.join(', ')}` : ''}`;
  const g = observedGeneration !== undefined ? { observedGeneration } : {};
  if (!modes.present) {
    const message = 'ConfigMap kube-system/raven-cfg is missing, so no mode is enabled';
    return [
      { type: 'Ready', status: 'False', reason: 'NoModeEnabled', message, ...g },
      { type: 'Degraded', status: 'False', reason: 'NoModeEnabled', message, ...g },
    ];
  }
  if (reports.length === 0) {
    const message = 'no endpoint is requested for an enabled mode';
    return [
      { type: 'Ready', status: 'True', reason: 'NothingRequested', message, ...g },
      { type: 'Degraded', status: 'False', reason: 'NothingRequested', message, ...g },
    ];
  }
  const missing = reports.filter((r) => r.elected === 0);
  const short = reports.filter((r) => r.elected < r.requested);
  const summary = reports.map(describe).join('; ');
  return [
    missing.length === 0
      ? { type: 'Ready', status: 'True', reason: 'EndpointsElected', message: summary, ...g }
      : { type: 'Ready', status: 'False', reason: 'NoEndpointAvailable', message: summary, ...g },
    short.length === 0
      ? { type: 'Degraded', status: 'False', reason: 'AllRequestedActive', message: summary, ...g }
      : { type: 'Degraded', status: 'True', reason: 'InsufficientEndpoints', message: summary, ...g },
  ];
}

/** Keeps each condition's lastTransitionTime unless its status changed, like apimachinery's SetStatusCondition. */
export function mergeConditions(previous: readonly Condition[] | undefined, next: ConditionDraft[], now: Date): Condition[] {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    return { ...c, lastTransitionTime: old && old.status === c.status ? old.lastTransitionTime : stamp };
  });
}
