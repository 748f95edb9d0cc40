import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { WORKSPACE_ROOT } from '../apps.ts';
import { cidrContains, cidrHost, cidrsOverlap, isHostAddress, parseAddress, parseCidr, type Ipv4Cidr } from './ipv4.ts';

/** One cluster node: a network namespace on its domain's LAN with one pod namespace on its pod CIDR. */
export interface BoxNodeSpec {
  name: string;
  internalIP: string;
  podCIDR: string;
  /** A 1:1 NAT address on the domain router's internet side (like a cloud EIP): everything sent to it reaches the node. */
  publicIP?: string;
  /** The Gateway this node is labelled with instead of the domain's, so that two Gateways can share one LAN. */
  gateway?: string;
  /** Extra Node labels; the gateway label comes from `gateway` or the domain. */
  labels?: Record<string, string>;
}

/**
 * How a domain router maps LAN flows to its WAN address. `masquerade` (plain MASQUERADE) keeps a flow's source port
 * when it is free, which is endpoint-independent mapping in practice, and conntrack admits only replies from the
 * remote address and port a flow was sent to: a port-restricted cone NAT. `symmetric` (MASQUERADE --random-fully)
 * picks a random source port for every new destination: a symmetric NAT, which defeats hole punching.
 */
export type BoxNatMode = 'masquerade' | 'symmetric';
export const BOX_NAT_MODES: readonly BoxNatMode[] = ['masquerade', 'symmetric'];

/** A network domain: a LAN behind one NAT router whose WAN side is on the shared internet. */
export interface BoxDomainSpec {
  /** Short id used in namespace and interface names: `[a-z][a-z0-9]{0,9}`. */
  name: string;
  /** Gateway the domain's nodes are labelled with (`raven.openyurt.io/gateway`) unless they name their own; no label when absent. */
  gateway?: string;
  /** The LAN prefix, e.g. `172.16.2.0/24`. */
  lan: string;
  /** The router's LAN address (every node's default gateway); defaults to the LAN's first address. */
  routerIP?: string;
  /** The router's own internet address, the source of masqueraded traffic. */
  wanIP: string;
  /** Default `masquerade`. */
  nat?: BoxNatMode;
  nodes: BoxNodeSpec[];
}

export interface BoxTopology {
  /** The shared internet subnet; its first address is the "internet host". Default 198.18.0.0/24. */
  internet?: string;
  /** The cluster pod range: pod traffic to it is not masqueraded by the box's CNI. Default 10.224.0.0/16. */
  podRange?: string;
  domains: BoxDomainSpec[];
}

export const DEFAULT_INTERNET = '198.18.0.0/24';
export const DEFAULT_POD_RANGE = '10.224.0.0/16';

export class BoxTopologyError extends Error {
  override readonly name = 'BoxTopologyError';
}

/** A topology with defaults filled in and every prefix parsed. */
export interface ResolvedTopology {
  internet: Ipv4Cidr;
  internetHostIP: string;
  podRange: Ipv4Cidr;
  domains: ResolvedDomain[];
}

export interface ResolvedDomain {
  name: string;
  gateway?: string;
  lan: Ipv4Cidr;
  routerIP: string;
  wanIP: string;
  nat: BoxNatMode;
  nodes: ResolvedNode[];
}

export interface ResolvedNode {
  name: string;
  domain: string;
  gateway?: string;
  internalIP: string;
  podCIDR: Ipv4Cidr;
  /** The node's end of the pod veth: the pod CIDR's first address. */
  podGatewayIP: string;
  /** The pod's address: the pod CIDR's second address. */
  podIP: string;
  publicIP?: string;
  labels: Record<string, string>;
}

const DOMAIN_NAME = /^[a-z][a-z0-9]{0,9}$/;
const NODE_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
/** A Gateway name that is also a valid label value. */
const GATEWAY_NAME = /^[a-z0-9]([-a-z0-9.]{0,61}[a-z0-9])?$/;

/** Checks a topology for what would make the box ambiguous or unbuildable, and fills in the defaults. */
export function resolveTopology(topology: BoxTopology): ResolvedTopology {
  const fail = (message: string): never => {
    throw new BoxTopologyError(message);
  };
  const cidr = (text: string, what: string): Ipv4Cidr => {
    try {
      return parseCidr(text);
    } catch {
      return fail(`${what}: not an IPv4 CIDR: ${JSON.stringify(text)}`);
    }
  };
  const address = (text: string, what: string): string => {
    try {
      parseAddress(text);
      return text;
    } catch {
      return fail(`${what}: not an IPv4 address: ${JSON.stringify(text)}`);
    }
  };
  const internet = cidr(topology.internet ?? DEFAULT_INTERNET, 'internet');
  const podRange = cidr(topology.podRange ?? DEFAULT_POD_RANGE, 'podRange');
  if (internet.bits > 29) fail(`internet ${internet.text} is too small`);
  const internetHostIP = cidrHost(internet, 1);
  if (topology.domains.length === 0) fail('a topology needs at least one domain');

  const wanAddresses = new Set([internetHostIP]);
  const claimWan = (ip: string, what: string) => {
    address(ip, what);
    if (!isHostAddress(internet, ip)) fail(`${what} ${ip} is not a host address of the internet ${internet.text}`);
    if (wanAddresses.has(ip)) fail(`${what} ${ip} is used twice on the internet`);
    wanAddresses.add(ip);
  };
  const domainNames = new Set<string>();
  const nodeNames = new Set<string>();
  const podCIDRs: Array<{ node: string; cidr: Ipv4Cidr }> = [];

  const domains = topology.domains.map((domain): ResolvedDomain => {
    if (!DOMAIN_NAME.test(domain.name)) fail(`domain name ${JSON.stringify(domain.name)} must match ${DOMAIN_NAME.source}`);
    if (domainNames.has(domain.name)) fail(`domain ${domain.name} is defined twice`);
    domainNames.add(domain.name);
    const lan = cidr(domain.lan, `domain ${domain.name} lan`);
    if (lan.bits > 30) fail(`domain ${domain.name}: LAN ${lan.text} is too small`);
    if (cidrsOverlap(lan, internet) || cidrsOverlap(lan, podRange)) fail(`domain ${domain.name}: LAN ${lan.text} overlaps the internet or the pod range`);
    const routerIP = address(domain.routerIP ?? cidrHost(lan, 1), `domain ${domain.name} routerIP`);
    if (!isHostAddress(lan, routerIP)) fail(`domain ${domain.name}: router ${routerIP} is not a host address of ${lan.text}`);
    claimWan(domain.wanIP, `domain ${domain.name} wanIP`);
    const nat = domain.nat ?? 'masquerade';
    if (!BOX_NAT_MODES.includes(nat)) fail(`domain ${domain.name}: nat ${JSON.stringify(nat)} is not one of ${BOX_NAT_MODES.join(', ')}`);
    if (domain.nodes.length === 0) fail(`domain ${domain.name} has no nodes`);
    const lanAddresses = new Set([routerIP]);
    const nodes = domain.nodes.map((node): ResolvedNode => {
      if (!NODE_NAME.test(node.name)) fail(`node name ${JSON.stringify(node.name)} is not a DNS label`);
      if (nodeNames.has(node.name)) fail(`node ${node.name} is defined twice`);
      nodeNames.add(node.name);
      address(node.internalIP, `node ${node.name} internalIP`);
      if (!isHostAddress(lan, node.internalIP)) fail(`node ${node.name}: ${node.internalIP} is not a host address of ${lan.text}`);
      if (lanAddresses.has(node.internalIP)) fail(`node ${node.name}: ${node.internalIP} is already used in domain ${domain.name}`);
      lanAddresses.add(node.internalIP);
      const podCIDR = cidr(node.podCIDR, `node ${node.name} podCIDR`);
      if (podCIDR.bits > 30) fail(`node ${node.name}: pod CIDR ${podCIDR.text} is too small`);
      if (!cidrContains(podRange, cidrHost(podCIDR, 0)) || podCIDR.bits < podRange.bits) {
        fail(`node ${node.name}: pod CIDR ${podCIDR.text} is outside the pod range ${podRange.text}`);
      }
      const clash = podCIDRs.find((other) => cidrsOverlap(other.cidr, podCIDR));
      if (clash) fail(`node ${node.name}: pod CIDR ${podCIDR.text} overlaps ${clash.node}'s ${clash.cidr.text}`);
      podCIDRs.push({ node: node.name, cidr: podCIDR });
      if (node.publicIP !== undefined) claimWan(node.publicIP, `node ${node.name} publicIP`);
      if (node.gateway !== undefined && !GATEWAY_NAME.test(node.gateway)) fail(`node ${node.name}: gateway ${JSON.stringify(node.gateway)} is not a valid Gateway name`);
      return {
        name: node.name, domain: domain.name, gateway: node.gateway ?? domain.gateway, internalIP: node.internalIP, podCIDR,
        podGatewayIP: cidrHost(podCIDR, 1), podIP: cidrHost(podCIDR, 2), publicIP: node.publicIP, labels: { ...node.labels },
      };
    });
    return { name: domain.name, gateway: domain.gateway, lan, routerIP, wanIP: domain.wanIP, nat, nodes };
  });
  return { internet, internetHostIP, podRange, domains };
}

/**
 * Checks that `ip` can become domain `domain`'s router WAN address: a host address of the internet that neither the
 * internet host, another router nor an exposed node uses.
 */
export function assertWanAddressFree(topology: ResolvedTopology, domain: string, ip: string): void {
  try {
    parseAddress(ip);
  } catch {
    throw new BoxTopologyError(`domain ${domain}: not an IPv4 address: ${JSON.stringify(ip)}`);
  }
  if (!isHostAddress(topology.internet, ip)) throw new BoxTopologyError(`domain ${domain}: ${ip} is not a host address of the internet ${topology.internet.text}`);
  const users = new Map<string, string>([[topology.internetHostIP, 'the internet host']]);
  for (const other of topology.domains) {
    if (other.name !== domain) users.set(other.wanIP, `router ${other.name}`);
    for (const node of other.nodes) if (node.publicIP) users.set(node.publicIP, `node ${node.name}`);
  }
  const user = users.get(ip);
  if (user) throw new BoxTopologyError(`domain ${domain}: ${ip} is already used by ${user}`);
}

/**
 * Two Gateways on one LAN behind one router (domain `shared`: shared-a in gw-shared-a, shared-b in gw-shared-b) and
 * a second NATed domain (`remote`, gw-remote), for direct paths between Gateways that share a LAN and across NATs.
 */
export function sameLanTopology(nat: BoxNatMode = 'masquerade'): BoxTopology {
  return {
    internet: DEFAULT_INTERNET,
    podRange: DEFAULT_POD_RANGE,
    domains: [
      { name: 'shared', lan: '172.16.20.0/24', wanIP: '198.18.0.60', nat, nodes: [
        { name: 'shared-a', gateway: 'gw-shared-a', internalIP: '172.16.20.10', podCIDR: '10.224.20.0/26' },
        { name: 'shared-b', gateway: 'gw-shared-b', internalIP: '172.16.20.11', podCIDR: '10.224.20.64/26' },
      ] },
      { name: 'remote', gateway: 'gw-remote', lan: '172.16.21.0/24', wanIP: '198.18.0.70', nat, nodes: [
        { name: 'remote-a', internalIP: '172.16.21.10', podCIDR: '10.224.21.0/26' },
      ] },
    ],
  };
}

const walkthroughNodesSchema = z.object({
  nodes: z.array(z.object({ name: z.string(), gateway: z.string(), internalIP: z.string(), podCIDR: z.string() })).min(1),
});
const gatewayDocSchema = z.object({
  spec: z.object({ endpoints: z.array(z.object({ nodeName: z.string(), publicIP: z.string().optional() })).optional() }).optional(),
});

/** The box side of the walkthrough that its data does not say: domain ids and router internet addresses. */
const WALKTHROUGH_ROUTERS: Record<string, { domain: string; wanIP: string }> = {
  'gw-cloud': { domain: 'cloud', wanIP: '198.18.0.10' },
  'gw-hangzhou': { domain: 'hangzhou', wanIP: '198.18.0.21' },
  'gw-qingdao': { domain: 'qingdao', wanIP: '198.18.0.31' },
};

export const WALKTHROUGH_DIR = join(WORKSPACE_ROOT, 'k8s/examples/walkthrough');

/**
 * The user walkthrough's three domains: nodes from `nodes.json`, public node addresses from the Gateways' endpoints
 * (`gateways.yaml`: gw-cloud's node gets 198.18.0.11), each LAN the /24 around its nodes.
 */
export function walkthroughTopology(dir = WALKTHROUGH_DIR): BoxTopology {
  const { nodes } = walkthroughNodesSchema.parse(JSON.parse(readFileSync(join(dir, 'nodes.json'), 'utf8')));
  const publicIPs = new Map<string, string>();
  for (const doc of parseAllDocuments(readFileSync(join(dir, 'gateways.yaml'), 'utf8'))) {
    for (const endpoint of gatewayDocSchema.parse(doc.toJS()).spec?.endpoints ?? []) {
      if (endpoint.publicIP) publicIPs.set(endpoint.nodeName, endpoint.publicIP);
    }
  }
  const domains = new Map<string, BoxDomainSpec>();
  for (const node of nodes) {
    const router = WALKTHROUGH_ROUTERS[node.gateway];
    if (!router) throw new BoxTopologyError(`the walkthrough gateway ${node.gateway} has no router in the box`);
    const lan = parseCidr(`${node.internalIP}/24`).text;
    const domain = domains.get(node.gateway) ?? { name: router.domain, gateway: node.gateway, lan, wanIP: router.wanIP, nodes: [] };
    domains.set(node.gateway, domain);
    domain.nodes.push({ name: node.name, internalIP: node.internalIP, podCIDR: node.podCIDR, publicIP: publicIPs.get(node.name) });
  }
  return { internet: DEFAULT_INTERNET, podRange: DEFAULT_POD_RANGE, domains: [...domains.values()] };
}
