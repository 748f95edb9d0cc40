import { isIPv4 } from 'node:net';
import { DATAPATH, ENDPOINT_CONFIG_KEYS, endpointPort, parseCidr, parseEndpoint, parseWireguardKey, type Cidr, type Endpoint, type Gateway, type WireguardKey } from '@raven/api-types';
import type {
  AddressSpec, FdbSpec, IptablesDesired, IpsetSpec, LinkSpec, NeighbourSpec, RouteSpec, RuleSpec, SysctlValues,
} from '@raven/netlink';
import type { NatPath } from './nat/paths.ts';
import { screenGateways } from './screen.ts';
import { domainOf, hostPrefix, peerEndpoint, reachability, uniqueSorted, type Domain, type Reachability } from './topology.ts';
import { vtepAddress, vtepMac } from './vxlan.ts';

export type DriverName = 'wireguard' | 'libreswan';

export interface PlanInput {
  nodeName: string;
  /** The Gateway this node belongs to (its `raven.openyurt.io/gateway` label). */
  memberOf?: string;
  gateways: readonly Gateway[];
  /** raven-cfg enable-l3-tunnel. */
  l3Enabled: boolean;
  host: { privateIP: string; underlayDevice: string; underlayMtu: number };
  forwardNodeIP: boolean;
  driver: DriverName;
  /** WireGuard preshared key (base64), derived from the PSK Secret. */
  presharedKey?: string;
  /** Persistent keepalive towards peers when this gateway is behind NAT. */
  keepaliveSeconds: number;
  /** Addresses never routed into a tunnel whatever the status says (the apiserver's); the node's own IP always is. */
  protectedIPs?: readonly string[];
  /**
   * NAT traversal towards NATed peers that are otherwise relayed, by peer Gateway: `punching` adds the peer with its
   * observed public mapping and a 1 s keepalive but no allowed IPs (traffic stays on the relay); `direct` moves the
   * peer's prefixes off the central gateway onto it. Endpoints must be validated `ip:port` values.
   */
  natPaths?: ReadonlyMap<string, NatPath>;
}

/** While punching, both ends send this often, so the first packets through each NAT meet the other's mapping soon. */
export const PUNCH_KEEPALIVE_SECONDS = 1;

export type Role =
  | { kind: 'none'; reason: string }
  | { kind: 'member'; gateway: string; gatewayNode: string }
  | { kind: 'gateway'; gateway: string; central: boolean };

export interface PeerPlan {
  gateway: string;
  nodeName: string;
  publicKey?: WireguardKey;
  endpoint?: string;
  /** The peer's public address (also without a port), for IPsec. */
  publicIP?: string;
  allowedIPs: Cidr[];
  keepaliveSeconds?: number;
  /** Gateways whose traffic this peer relays for us (it is the central gateway). */
  relays: string[];
  underNAT: boolean;
  /** Set on a NATed peer reached without the relay (or being punched towards). */
  natPath?: NatPath['mode'];
}

export interface VpnPlan {
  /** This gateway's name (its IKE identity). */
  gateway: string;
  device: string;
  listenPort: number;
  mtu: number;
  presharedKey?: WireguardKey;
  underNAT: boolean;
  localSubnets: string[];
  localPrivateIP: string;
  localPublicIP?: string;
  peers: PeerPlan[];
}

/** A peer gateway the tunnel-agent probes through the tunnel and reports in `status.connections`. */
export interface ProbeTarget {
  gateway: string;
  nodeName: string;
  /** Its private IP, which the data path routes through the tunnel; when unknown it is reported, never probed. */
  ip?: string;
  /** The planned peer whose tunnel carries the probes: the target itself, or the central gateway relaying to it. */
  via: PeerPlan;
  relayed: boolean;
}

export interface DataPathPlan {
  role: Role;
  links: LinkSpec[];
  addresses: AddressSpec[];
  fdb: FdbSpec[];
  neighbours: NeighbourSpec[];
  routes: RouteSpec[];
  rules: RuleSpec[];
  ipsets: IpsetSpec[];
  iptables: { v4: IptablesDesired; v6: IptablesDesired };
  sysctls: SysctlValues;
  vpn?: VpnPlan;
  /** Every remote prefix routed through the tunnel (for logs and metrics). */
  remotePrefixes: string[];
  /** On the gateway, the peers to probe: every routed peer and every domain relayed through one. */
  probes: ProbeTarget[];
  /** Values of the Gateways left out of the plan, one sentence each. */
  dropped: string[];
}

const D = DATAPATH;
export const SKIP_NAT_SET = D.skipNatSet;
export const MARK_SET_V6 = `${D.markSet}-v6`;
export const SKIP_NAT_SET_V6 = `${D.skipNatSet}-v6`;
export const MSS_CHAIN = 'RAVEN-MSS-CLAMP';
const MARK = `0x${D.fwmark.toString(16)}`;
const MARK_RULE = `--set-xmark ${MARK}/${MARK}`;

/** Everything this agent may own in the kernel; the appliers touch nothing else. */
export const OWNED = {
  links: [D.vxlanDevice, D.wireguardDevice],
  tables: [D.routeTableVxlan, D.routeTableVpn],
  rulePriorities: [D.rulePriorityVxlan, D.rulePriorityVpn],
  ipsets: [D.markSet, D.skipNatSet, MARK_SET_V6, SKIP_NAT_SET_V6],
  chains: [
    { table: 'mangle' as const, name: D.markChain },
    { table: 'mangle' as const, name: MSS_CHAIN },
    { table: 'nat' as const, name: D.postroutingChain },
  ],
};

export const EMPTY_PLAN = (role: Role): DataPathPlan => ({
  role, links: [], addresses: [], fdb: [], neighbours: [], routes: [], rules: [], ipsets: [],
  iptables: { v4: { chains: [], jumps: [] }, v6: { chains: [], jumps: [] } }, sysctls: {}, remotePrefixes: [], probes: [], dropped: [],
});

// The prefixes were screened as CIDRs (screen.ts): only IPv6 ones contain ':'. node:net's isIPv6 is a large regular
// expression, which at 6,000 prefixes cost more than the rest of the planner.
const isV6Prefix = (prefix: string) => prefix.includes(':');
const byFamily = (prefixes: readonly string[]) => ({
  v4: prefixes.filter((p) => !isV6Prefix(p)),
  v6: prefixes.filter(isV6Prefix),
});

/**
 * The L3 planner: a pure function from the Gateways (their elected endpoints and status.nodes), this node, and
 * config, to the complete kernel state this node should have. The appliers make the kernel match it.
 */
export function planDataPath(input: PlanInput): DataPathPlan {
  const screened = screenGateways(input.gateways, [input.host.privateIP, ...(input.protectedIPs ?? [])]);
  const plan = planScreened({ ...input, gateways: screened.gateways });
  plan.dropped = [...screened.dropped, ...plan.dropped];
  return plan;
}

/**
 * What every subsystem plans from: this node's place among the domains, derived once. A member's vxlan peer is its
 * gateway node; a gateway's are its members.
 */
interface Topology {
  input: PlanInput;
  local: Domain;
  reach: Reachability;
  isGateway: boolean;
  /** This node is the gateway the NATed domains relay through. */
  centralHere: boolean;
  remotePrefixes: string[];
  localPrefixes: string[];
  prefixesOf: (d: Domain) => string[];
  vxlanPeers: Array<{ ip: string; subnets: string[] }>;
  /** This node's own tunnel endpoint: the active one on the gateway, a standby candidate's on a member. */
  tunnelEndpoint?: Endpoint;
  dropped: string[];
}

function planScreened(input: PlanInput): DataPathPlan {
  const t = topologyOf(input);
  if ('none' in t) return EMPTY_PLAN({ kind: 'none', reason: t.none });
  const vxlan = vxlanPlan(t);
  const vpn = vpnDataPath(t);
  const plan = EMPTY_PLAN(t.isGateway
    ? { kind: 'gateway', gateway: t.local.name, central: t.centralHere }
    : { kind: 'member', gateway: t.local.name, gatewayNode: t.local.endpoint.nodeName });
  return {
    ...plan,
    links: [...vxlan.links, ...vpn.links],
    addresses: vxlan.addresses,
    fdb: vxlan.fdb,
    neighbours: vxlan.neighbours,
    routes: [...vxlan.routes, ...vpn.routes],
    rules: [...vxlan.rules, ...vpn.rules],
    sysctls: { 'net.ipv4.ip_forward': 1, ...vxlan.sysctls, ...vpn.sysctls },
    ...firewallPlan(t),
    ...(vpn.vpn ? { vpn: vpn.vpn } : {}),
    remotePrefixes: t.remotePrefixes,
    probes: t.isGateway && vpn.vpn ? probeTargets(t, vpn.vpn) : [],
    dropped: t.dropped,
  };
}

function topologyOf(input: PlanInput): Topology | { none: string } {
  if (!input.l3Enabled) return { none: 'L3 tunnel disabled in raven-cfg' };
  if (!input.memberOf) return { none: 'node is in no Gateway' };
  const own = input.gateways.find((g) => g.metadata.name === input.memberOf);
  const local = own && domainOf(own);
  if (!local) return { none: `Gateway ${input.memberOf} has no active tunnel endpoint` };
  if (!isIPv4(input.host.privateIP)) return { none: `the node's private IP ${input.host.privateIP} is not IPv4, which the vxlan underlay needs` };
  const domains = input.gateways.map(domainOf).filter((d): d is Domain => d !== undefined);
  const reach = reachability(local, domains);

  // Never route a peer's own tunnel address into the tunnel, nor an address that is also one of ours.
  const localIPs = new Set(local.nodeIPs.values());
  // Nor where a NAT path's WireGuard packets go: a peer on our LAN is punched at its private IP.
  const natEndpointIPs = [...(input.natPaths?.values() ?? [])].map((p) => parseEndpoint(p.endpoint)?.ip);
  const excluded = new Set([...localIPs, input.host.privateIP, ...(input.protectedIPs ?? []), ...[...domains.map((d) => d.endpoint.publicIP), ...natEndpointIPs].filter((ip): ip is string => !!ip)]);
  const prefixCache = new Map<string, string[]>();
  const prefixesOf = (d: Domain): string[] => {
    const cached = prefixCache.get(d.name);
    if (cached) return cached;
    const ips = input.forwardNodeIP ? [...d.nodeIPs.values()] : [d.nodeIPs.get(d.endpoint.nodeName)].filter((ip): ip is string => !!ip);
    const prefixes = uniqueSorted([...d.subnets, ...ips.filter((ip) => !excluded.has(ip)).map(hostPrefix)]);
    prefixCache.set(d.name, prefixes);
    return prefixes;
  };
  const isGateway = local.endpoint.nodeName === input.nodeName;
  const common = {
    input, local, reach, isGateway, prefixesOf,
    centralHere: isGateway && reach.central?.name === local.name,
    remotePrefixes: uniqueSorted([...reach.direct, ...reach.relayed].flatMap(prefixesOf)),
    localPrefixes: uniqueSorted([...local.subnets, ...(input.forwardNodeIP ? [...localIPs].map(hostPrefix) : [])]),
  };
  if (isGateway) {
    const dropped: string[] = [];
    const memberSubnets = new Map((own.status?.nodes ?? []).map((n) => [n.nodeName, n.subnets ?? []]));
    const vxlanPeers = vxlanMembers(local, input.nodeName, input.host.privateIP, dropped).map(([name, ip]) => ({ ip, subnets: memberSubnets.get(name) ?? [] }));
    return { ...common, vxlanPeers, tunnelEndpoint: local.endpoint, dropped };
  }
  const gatewayNode = local.endpoint.nodeName;
  const gatewayIP = local.nodeIPs.get(gatewayNode);
  if (!gatewayIP) return { none: `the private IP of gateway node ${gatewayNode} is not known yet` };
  if (!isIPv4(gatewayIP)) return { none: `the private IP ${gatewayIP} of gateway node ${gatewayNode} is not IPv4, which the vxlan underlay needs` };
  // A standby tunnel endpoint keeps its tunnels up without routes, so failover only moves routes and allowed IPs.
  const candidate = (own.spec?.endpoints ?? []).find((e) => e.type === 'tunnel' && e.nodeName === input.nodeName);
  return { ...common, vxlanPeers: [{ ip: gatewayIP, subnets: [] }], tunnelEndpoint: candidate, dropped: [] };
}

const markRule = (family: 4 | 6): RuleSpec => ({ priority: D.rulePriorityVxlan, table: D.routeTableVxlan, fwmark: D.fwmark, fwmask: D.fwmark, family });

/**
 * vxlan between a gateway and its members: a member sends traffic to remote prefixes to its gateway node; a gateway routes each
 * member's pod subnets back to it. No peer, no device.
 */
function vxlanPlan(t: Topology): Pick<DataPathPlan, 'links' | 'addresses' | 'fdb' | 'neighbours' | 'routes' | 'rules' | 'sysctls'> {
  const { host } = t.input;
  if (t.vxlanPeers.length === 0) return { links: [], addresses: [], fdb: [], neighbours: [], routes: [], rules: [], sysctls: {} };
  const routes: RouteSpec[] = t.isGateway
    // Member node IPs are reached on the underlay directly (a route here would also capture vxlan's own packets).
    ? t.vxlanPeers.flatMap(({ ip, subnets }) => subnets.filter((p) => !isV6Prefix(p)).map((dst): RouteSpec => ({ table: D.routeTableVxlan, dst, via: vtepAddress(ip), dev: D.vxlanDevice, onlink: true })))
    // A member routes by destination, not by a mark: a pod's connection to a ClusterIP whose backend is in another
    // domain is DNATed after mangle PREROUTING, so only the route lookup sees its real destination.
    : [
      // The node's own traffic leaves from its private IP, not from its VTEP address, which nothing routes back.
      ...t.remotePrefixes.filter((p) => !isV6Prefix(p)).map((dst): RouteSpec => ({ table: D.routeTableVxlan, dst, via: vtepAddress(t.vxlanPeers[0]!.ip), dev: D.vxlanDevice, onlink: true, src: host.privateIP })),
      // vxlan's own packets to the gateway never go back into raven0, whatever a remote prefix covers.
      { table: D.routeTableVxlan, dst: hostPrefix(t.vxlanPeers[0]!.ip), type: 'throw' },
    ];
  return {
    links: [{
      name: D.vxlanDevice, kind: 'vxlan', vni: D.vxlanVni, port: D.vxlanPort, local: host.privateIP, dev: host.underlayDevice,
      learning: false, mtu: host.underlayMtu - D.mtuOverhead.vxlan, mac: vtepMac(host.privateIP), up: true,
    }],
    addresses: [{ dev: D.vxlanDevice, address: `${vtepAddress(host.privateIP)}/8` }],
    fdb: t.vxlanPeers.map(({ ip }) => ({ dev: D.vxlanDevice, mac: vtepMac(ip), dst: ip })),
    neighbours: t.vxlanPeers.map(({ ip }) => ({ dev: D.vxlanDevice, address: vtepAddress(ip), lladdr: vtepMac(ip) })),
    routes,
    rules: [t.isGateway ? markRule(4) : { priority: D.rulePriorityVxlan, table: D.routeTableVxlan, family: 4 }],
    sysctls: { [`net.ipv4.conf.${D.vxlanDevice}.rp_filter`]: 2 },
  };
}

/** Marking of traffic to remote domains (into vxlan on a member, from the tunnel on a gateway), MSS clamping, no SNAT. */
function firewallPlan(t: Topology): Pick<DataPathPlan, 'ipsets' | 'iptables'> {
  const { driver } = t.input;
  const remote = byFamily(t.remotePrefixes);
  const sources = byFamily(t.centralHere ? uniqueSorted([...t.localPrefixes, ...t.remotePrefixes]) : t.localPrefixes);
  const tunnelIn = driver === 'wireguard' ? `-i ${D.wireguardDevice}` : '-m policy --dir in --pol ipsec';
  const withVxlan = t.vxlanPeers.length > 0;
  const firewall = (markSet: string, skipSet: string, vxlan: boolean): IptablesDesired => ({
    chains: [
      // The gateway marks what comes out of the tunnel for its members (vxlan); members route by destination.
      { table: 'mangle', name: D.markChain, rules: t.isGateway ? [`${tunnelIn} -j MARK ${MARK_RULE}`] : [] },
      // TCP over the tunnels must fit their smaller MTU even when pods use the underlay's.
      { table: 'mangle', name: MSS_CHAIN, rules: [
        ...(vxlan ? [`-o ${D.vxlanDevice} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`] : []),
        ...(t.isGateway && driver === 'wireguard' ? [`-o ${D.wireguardDevice} -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu`] : []),
      ] },
      // Local (and, on the central gateway, relayed) traffic to remote domains keeps its source: no SNAT.
      { table: 'nat', name: D.postroutingChain, rules: [`-m set --match-set ${skipSet} src -m set --match-set ${markSet} dst -j ACCEPT`] },
    ],
    jumps: [
      { table: 'mangle', from: 'PREROUTING', to: D.markChain, position: 'first' },
      { table: 'mangle', from: 'OUTPUT', to: D.markChain, position: 'first' },
      { table: 'mangle', from: 'POSTROUTING', to: MSS_CHAIN, position: 'first' },
      { table: 'nat', from: 'POSTROUTING', to: D.postroutingChain, position: 'first' },
    ],
  });
  return {
    ipsets: [
      { name: D.markSet, type: 'hash:net', family: 'inet', members: remote.v4 },
      { name: D.skipNatSet, type: 'hash:net', family: 'inet', members: sources.v4 },
      { name: MARK_SET_V6, type: 'hash:net', family: 'inet6', members: remote.v6 },
      { name: SKIP_NAT_SET_V6, type: 'hash:net', family: 'inet6', members: sources.v6 },
    ],
    iptables: {
      v4: firewall(D.markSet, D.skipNatSet, withVxlan),
      // Members reach remote IPv6 prefixes through nothing: vxlan carries IPv4 only.
      v6: t.isGateway && remote.v6.length > 0 ? firewall(MARK_SET_V6, SKIP_NAT_SET_V6, false) : { chains: [], jumps: [] },
    },
  };
}

/**
 * The VPN: on the gateway, tunnels to the other gateways with the remote prefixes routed into them (WireGuard's
 * device; IPsec routes by policy); on a standby candidate, WireGuard tunnels without routes.
 */
function vpnDataPath(t: Topology): Pick<DataPathPlan, 'links' | 'routes' | 'rules' | 'sysctls' | 'vpn'> {
  const { host, driver } = t.input;
  const none = { links: [], routes: [], rules: [], sysctls: {} };
  const device: LinkSpec = { name: D.wireguardDevice, kind: 'adopt', mtu: host.underlayMtu - D.mtuOverhead.wireguard, up: true };
  if (!t.isGateway) {
    return t.tunnelEndpoint && driver === 'wireguard' ? { ...none, links: [device], vpn: vpnPlan(t, t.tunnelEndpoint, false) } : none;
  }
  const vpn = vpnPlan(t, t.tunnelEndpoint!, true);
  if (driver !== 'wireguard') return { ...none, vpn };
  return {
    links: [device],
    routes: t.remotePrefixes.map((dst): RouteSpec => ({ table: D.routeTableVpn, dst, dev: D.wireguardDevice, scope: 'link' })),
    rules: [
      { priority: D.rulePriorityVpn, table: D.routeTableVpn, family: 4 },
      ...(t.remotePrefixes.some(isV6Prefix) ? [{ priority: D.rulePriorityVpn, table: D.routeTableVpn, family: 6 } as const] : []),
    ],
    sysctls: { [`net.ipv4.conf.${D.wireguardDevice}.rp_filter`]: 2 },
    vpn,
  };
}

function probeTargets(t: Topology, vpn: VpnPlan): ProbeTarget[] {
  const domains = new Map([...t.reach.direct, ...t.reach.relayed].map((d) => [d.name, d]));
  return vpn.peers.filter((p) => p.allowedIPs.length > 0).flatMap((peer) => [
    { gateway: peer.gateway, nodeName: peer.nodeName, ip: domains.get(peer.gateway)?.nodeIPs.get(peer.nodeName), via: peer, relayed: false },
    ...peer.relays.flatMap((name) => {
      const d = domains.get(name);
      return d ? [{ gateway: name, nodeName: d.endpoint.nodeName, ip: d.nodeIPs.get(d.endpoint.nodeName), via: peer, relayed: true }] : [];
    }),
  ]);
}

/**
 * The VPN towards the other gateways. Every domain's standby tunnel endpoints are peers too, with no allowed IPs:
 * their handshakes are done before a failover, which then only moves allowed IPs and routes (no new handshake, no
 * NAT discovery). `routed` is false on a standby: its peers carry no allowed IPs.
 */
function vpnPlan(t: Topology, localEndpoint: Endpoint, routed: boolean): VpnPlan {
  const { input, reach, prefixesOf } = t;
  const localNAT = localEndpoint.underNAT === true;
  const peerOf = (d: Domain, endpoint: Endpoint, allowedIPs: string[], relays: string[]): PeerPlan => ({
    gateway: d.name,
    nodeName: endpoint.nodeName,
    publicKey: parseWireguardKey(endpoint.config?.[ENDPOINT_CONFIG_KEYS.publicKey]),
    endpoint: peerEndpoint({ ...d, endpoint }),
    publicIP: endpoint.publicIP,
    allowedIPs: routed ? cidrs(allowedIPs) : [],
    keepaliveSeconds: localNAT ? input.keepaliveSeconds : undefined,
    relays,
    underNAT: endpoint.underNAT === true,
  });
  const peers: PeerPlan[] = [];
  const natPaths = routed && localNAT ? input.natPaths ?? new Map<string, NatPath>() : new Map<string, NatPath>();
  const viaCentral = reach.relayed.filter((d) => natPaths.get(d.name)?.mode !== 'direct');
  for (const d of reach.direct) {
    const relayed = reach.central && d.name === reach.central.name ? viaCentral : [];
    peers.push(peerOf(d, d.endpoint, uniqueSorted([...prefixesOf(d), ...relayed.flatMap(prefixesOf)]), relayed.map((r) => r.name).sort()));
    for (const standby of standbyEndpoints(d)) {
      if (localNAT && standby.underNAT) continue; // NAT to NAT never connects directly
      peers.push(peerOf(d, standby, [], []));
    }
  }
  for (const d of reach.relayed) {
    const path = natPaths.get(d.name);
    if (!path) continue;
    peers.push({
      ...peerOf(d, d.endpoint, path.mode === 'direct' ? prefixesOf(d) : [], []),
      endpoint: path.endpoint,
      keepaliveSeconds: path.mode === 'punching' ? PUNCH_KEEPALIVE_SECONDS : input.keepaliveSeconds,
      natPath: path.mode,
    });
  }
  return {
    gateway: t.local.name,
    device: DATAPATH.wireguardDevice,
    listenPort: endpointPort(localEndpoint),
    mtu: input.host.underlayMtu - (input.driver === 'wireguard' ? DATAPATH.mtuOverhead.wireguard : DATAPATH.mtuOverhead.ipsec),
    presharedKey: parseWireguardKey(input.presharedKey),
    underNAT: localNAT,
    localSubnets: t.localPrefixes,
    localPrivateIP: input.host.privateIP,
    localPublicIP: localEndpoint.publicIP,
    peers: peers.sort((a, b) => (a.gateway < b.gateway ? -1 : a.gateway > b.gateway ? 1 : a.nodeName < b.nodeName ? -1 : 1)),
  };
}

/**
 * The tunnel endpoints of a domain's spec that are not active but could be elected, and have published a key. Only
 * members of the Gateway (in its status.nodes) qualify: listing a node in the spec makes no node a peer.
 */
function standbyEndpoints(d: Domain): Endpoint[] {
  return (d.gateway.spec?.endpoints ?? []).filter((e) => e.type === 'tunnel' && e.nodeName !== d.endpoint.nodeName && d.members.has(e.nodeName) && !!e.config?.[ENDPOINT_CONFIG_KEYS.publicKey]);
}

const cidrs = (prefixes: readonly string[]): Cidr[] => prefixes.flatMap((p) => parseCidr(p)?.cidr ?? []);

/**
 * The local members a gateway reaches over vxlan: IPv4 private IPs only (the underlay is IPv4), and one node per
 * VTEP address (240.x.y.z drops the first octet, so 10.1.2.3 and 11.1.2.3 collide: the first by name keeps it).
 */
function vxlanMembers(local: Domain, self: string, selfIP: string, dropped: string[]): Array<[string, string]> {
  const byVtep = new Map<string, string>([[vtepAddress(selfIP), self]]);
  const out: Array<[string, string]> = [];
  for (const [name, ip] of [...local.nodeIPs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (name === self) continue;
    if (!isIPv4(ip)) {
      dropped.push(`Gateway ${local.name}: node ${name} has no IPv4 private IP (${ip}), so it is left out of vxlan`);
      continue;
    }
    const vtep = vtepAddress(ip);
    const holder = byVtep.get(vtep);
    if (holder) {
      dropped.push(`Gateway ${local.name}: node ${name} (${ip}) has the same VTEP address ${vtep} as node ${holder}, so it is left out of vxlan`);
      continue;
    }
    byVtep.set(vtep, name);
    out.push([name, ip]);
  }
  return out;
}

/**
 * The VPN state to apply before the kernel step. A punched peer with a new endpoint waits for the kernel step, or
 * (when it was already configured) keeps its applied self: the same plan may remove the route that would carry its
 * first handshake into the tunnel, and WireGuard does not initiate again for 5 s.
 */
export function vpnBeforeKernel(next: VpnPlan, applied: VpnPlan | undefined): VpnPlan {
  const same = (a: PeerPlan, b: PeerPlan) => a.gateway === b.gateway && a.nodeName === b.nodeName;
  let withheld = false;
  const peers = next.peers.flatMap((peer) => {
    if (peer.natPath !== 'punching') return [peer];
    const before = applied?.peers.find((p) => same(p, peer));
    if (before?.endpoint === peer.endpoint) return [peer];
    withheld = true;
    return before ? [before] : [];
  });
  return withheld ? { ...next, peers } : next;
}
