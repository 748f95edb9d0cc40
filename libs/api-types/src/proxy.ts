import { isIP } from 'node:net';
import { PORTS, SERVICES } from './constants.ts';
import type { Endpoint, Gateway } from './gateway.ts';
import { activeEndpointsOfType, endpointPort, isExposed } from './helpers.ts';
import { parsePortList } from './ports.ts';

/**
 * The L7 proxy's identities, shared by proxy-server, proxy-client and the CSR approver in gateway-pickup, so that
 * what one side requests is exactly what the other side checks.
 */
export const PROXY_CLIENT_HEALTH_PORT = 10267;

export const PROXY_SERVICE_ACCOUNTS = { server: 'raven-proxy-server', client: 'raven-proxy-client' } as const;

export const CSR_SIGNERS = {
  /** proxy-server's serving certificate (tunnel port and HTTPS front end): CN system:node:<node>, O system:nodes. */
  serving: 'kubernetes.io/kubelet-serving',
  /** proxy-client's tunnel client certificate: CN raven:proxy-client:<node>, no organization, no SANs. */
  client: 'kubernetes.io/kube-apiserver-client',
} as const;

export const NODE_ORGANIZATION = 'system:nodes';
const NODE_CN_PREFIX = 'system:node:';
const PROXY_CLIENT_CN_PREFIX = 'raven:proxy-client:';

/** CSR `spec.extra` key the apiserver fills from a ServiceAccount token bound to a Pod on that node. */
export const NODE_NAME_EXTRA = 'authentication.kubernetes.io/node-name';

export const servingCommonName = (node: string): string => `${NODE_CN_PREFIX}${node}`;
export const proxyClientCommonName = (node: string): string => `${PROXY_CLIENT_CN_PREFIX}${node}`;

export function nodeOfServingCommonName(cn: string): string | undefined {
  return cn.startsWith(NODE_CN_PREFIX) && cn.length > NODE_CN_PREFIX.length ? cn.slice(NODE_CN_PREFIX.length) : undefined;
}

export function nodeOfProxyClientCommonName(cn: string): string | undefined {
  return cn.startsWith(PROXY_CLIENT_CN_PREFIX) && cn.length > PROXY_CLIENT_CN_PREFIX.length ? cn.slice(PROXY_CLIENT_CN_PREFIX.length) : undefined;
}

/** DNS names of the internal proxy Service, which the serving certificate also covers. */
export function proxyInternalServiceNames(namespace: string): string[] {
  const svc = SERVICES.proxyInternal;
  return [svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.cluster.local`];
}

/** Kubelet ports are always reachable through the proxy (HTTPS 10250, read-only HTTP 10255). */
export const KUBELET_PORTS = { https: PORTS.kubeletSecure, http: PORTS.kubeletReadOnly } as const;

/** Request header and query parameter naming the target node (upstream names). */
export const PROXY_HOST_HEADER = 'x-tunnel-proxy-host';
export const PROXY_NODE_QUERY = 'nodeName';

/**
 * Every exposed Gateway's proxyHTTPPort and proxyHTTPSPort lists (the ports of x-raven-proxy-internal-svc). A port
 * listed as both is HTTPS, since a Service port has one target: `conflicts` names those.
 */
export function exposedProxyPorts(gateways: readonly Gateway[]): { http: Set<number>; https: Set<number>; conflicts: number[] } {
  const http = new Set<number>();
  const https = new Set<number>();
  for (const gw of gateways) {
    if (!isExposed(gw)) continue;
    const lists = gw.spec?.proxyConfig;
    for (const p of safePortList(lists?.proxyHTTPPort)) http.add(p);
    for (const p of safePortList(lists?.proxyHTTPSPort)) https.add(p);
  }
  const conflicts = [...http].filter((p) => https.has(p)).sort((a, b) => a - b);
  for (const p of conflicts) http.delete(p);
  return { http, https, conflicts };
}

/** Target ports reachable through the proxy, by scheme: the kubelet's, plus the exposed Gateways' proxy ports. */
export function proxyReachablePorts(gateways: readonly Gateway[]): { http: Set<number>; https: Set<number> } {
  const exposed = exposedProxyPorts(gateways);
  const https = new Set<number>([KUBELET_PORTS.https, ...exposed.https]);
  const http = new Set<number>([KUBELET_PORTS.http, ...exposed.http].filter((p) => !https.has(p)));
  return { http, https };
}

/** Where proxy-clients reach an active proxy-server endpoint: its public IP and public port (else its port). */
export function proxyServerAddress(ep: Endpoint): string | undefined {
  if (!ep.publicIP) return undefined;
  const port = ep.publicPort ?? endpointPort(ep);
  return ep.publicIP.includes(':') ? `[${ep.publicIP}]:${port}` : `${ep.publicIP}:${port}`;
}

function safePortList(list: string | undefined): number[] {
  try {
    return parsePortList(list);
  } catch {
    return []; // the CRD rejects malformed lists; an object stored before that rule existed contributes nothing
  }
}

// ---------------------------------------------------------------- who may run which proxy, and serve what

const listsProxyEndpoint = (gw: Gateway, node: string) => (gw.spec?.endpoints ?? []).some((e) => e.type === 'proxy' && e.nodeName === node);
const electsProxyEndpoint = (gw: Gateway, node: string) => activeEndpointsOfType(gw, 'proxy').some((e) => e.nodeName === node);

/** The node is listed as a proxy endpoint of some Gateway: it renews the proxy heartbeat Lease (it may be elected). */
export function isProxyCandidate(node: string, gateways: readonly Gateway[]): boolean {
  return gateways.some((gw) => listsProxyEndpoint(gw, node));
}

/** The exposed Gateways listing `node` as a proxy endpoint: proxy-server may run there (and get a serving certificate). */
export function proxyServerGateways(node: string, gateways: readonly Gateway[]): Gateway[] {
  return gateways.filter((gw) => isExposed(gw) && listsProxyEndpoint(gw, node));
}

/** The exposed Gateway in which `node` is an elected proxy endpoint, if any: then its proxy-server serves. */
export function activeProxyServerGateway(node: string, gateways: readonly Gateway[]): Gateway | undefined {
  return gateways.find((gw) => isExposed(gw) && electsProxyEndpoint(gw, node));
}

/** A node as the proxy policy needs it: its Gateway label (self-editable!) and its name. */
export interface ProxyNodeFacts {
  name: string;
  gateway?: string | undefined;
}

/**
 * What a proxy-client on a node serves:
 *  - `domain`: the nodes of its non-exposed Gateway, only while it is an elected proxy endpoint of that Gateway (the
 *    election is pickup's, from the admin's endpoint list, so relabelling a node into another Gateway gains nothing);
 *  - `self`: a node in no Gateway serves itself alone;
 *  - `nothing`: anything else, with the reason.
 * `standby` tells a listed but not elected endpoint (it may hold a certificate, not a tunnel).
 */
export type ProxyClientRole =
  | { serves: 'domain'; gateway: string }
  | { serves: 'self' }
  | { serves: 'nothing'; standby: boolean; reason: string };

export function proxyClientRole(node: ProxyNodeFacts, gateways: readonly Gateway[]): ProxyClientRole {
  if (!node.gateway) return { serves: 'self' };
  const gw = gateways.find((g) => g.metadata.name === node.gateway);
  if (!gw) return { serves: 'nothing', standby: false, reason: `Gateway ${node.gateway} not found` };
  if (isExposed(gw)) return { serves: 'nothing', standby: false, reason: `Gateway ${gw.metadata.name} is exposed: its nodes are served by proxy-server` };
  if (electsProxyEndpoint(gw, node.name)) return { serves: 'domain', gateway: gw.metadata.name };
  const listed = listsProxyEndpoint(gw, node.name);
  return { serves: 'nothing', standby: listed, reason: listed ? `standby: not an elected proxy endpoint of Gateway ${gw.metadata.name}` : `not a proxy endpoint of Gateway ${gw.metadata.name}` };
}

/** A proxy-client identity may be issued to a node that serves, or may be elected to serve (a standby endpoint). */
export function mayHoldProxyClientIdentity(node: ProxyNodeFacts, gateways: readonly Gateway[]): boolean {
  const role = proxyClientRole(node, gateways);
  return role.serves !== 'nothing' || role.standby;
}

// ---------------------------------------------------------------- where the proxies may dial

const V4_FORBIDDEN: Array<[prefix: number, bits: number, why: string]> = [
  [0x00000000, 8, 'an unspecified ("this network") address'],
  [0x7f000000, 8, 'a loopback address'],
  [0xa9fe0000, 16, 'a link-local address (cloud metadata services live there)'],
  [0xe0000000, 4, 'a multicast address'],
  [0xf0000000, 4, 'a reserved or broadcast address'],
];

function v4ToInt(ip: string): number {
  return ip.split('.').reduce((n, part) => ((n << 8) | Number(part)) >>> 0, 0);
}

/**
 * Why the proxies must never dial `ip`, whatever a Node's addresses say (node-writable): loopback, link-local,
 * unspecified, multicast and broadcast addresses, IPv4-mapped IPv6 forms included. Undefined when it may be dialled.
 * `allowLoopback` exists for tests whose nodes all live on 127.0.0.0/8.
 */
export function forbiddenTargetReason(ip: string, opts: { allowLoopback?: boolean } = {}): string | undefined {
  let v4 = isIP(ip) === 4 ? ip : undefined;
  if (isIP(ip) === 6) {
    const lower = ip.toLowerCase();
    const mapped = /^(?:0{0,4}:){0,4}:?(?:0{0,4}:)?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    if (mapped) v4 = mapped[1];
    else {
      const expanded = expandV6(lower);
      if (expanded === '0000:0000:0000:0000:0000:0000:0000:0000') return 'an unspecified address';
      if (expanded === '0000:0000:0000:0000:0000:0000:0000:0001') return opts.allowLoopback ? undefined : 'a loopback address';
      const first = parseInt(expanded.slice(0, 4), 16);
      if ((first & 0xffc0) === 0xfe80) return 'a link-local address';
      if ((first & 0xff00) === 0xff00) return 'a multicast address';
      return undefined;
    }
  }
  if (!v4) return 'not an IP address';
  const n = v4ToInt(v4);
  for (const [prefix, bits, why] of V4_FORBIDDEN) {
    const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
    if (((n & mask) >>> 0) === prefix) return bits === 8 && prefix === 0x7f000000 && opts.allowLoopback ? undefined : why;
  }
  return undefined;
}

function expandV6(ip: string): string {
  const [head = '', tail] = ip.split('::');
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return groups.map((g) => g.padStart(4, '0')).join(':');
}

// ---------------------------------------------------------------- the proxy-server's serving certificate

export interface ServingSanInput {
  node: { name: string; internalIPs: readonly string[]; externalIPs: readonly string[] };
  gateways: readonly Gateway[];
  namespace: string;
  /** Some other Node lists this address (InternalIP or ExternalIP). */
  claimedByOtherNode: (ip: string) => boolean;
}

/**
 * The SANs of a proxy-server's serving certificate (a kubelet-serving one, which the apiserver would also trust for
 * the node): its node name, the internal Service's names, the public IPs the admin wrote into its proxy endpoints, and
 * the addresses the node itself writes (Node addresses, a discovered public IP) only when no other node claims them
 * and they are never-dialled addresses neither. proxy-server requests exactly these; the CSR approver allows no more.
 */
export function proxyServingSans(input: ServingSanInput): { dnsNames: string[]; ipAddresses: string[] } {
  const { node, gateways } = input;
  const mine = proxyServerGateways(node.name, gateways);
  const adminWritten = new Set<string>();
  const nodeWritten = new Set<string>([...node.internalIPs, ...node.externalIPs]);
  const othersPublic = new Set<string>();
  for (const gw of gateways) {
    for (const e of gw.spec?.endpoints ?? []) {
      if (!e.publicIP) continue;
      if (e.nodeName !== node.name) othersPublic.add(e.publicIP);
      else if (e.type === 'proxy' && mine.includes(gw)) adminWritten.add(e.publicIP);
    }
    for (const e of gw.status?.activeEndpoints ?? []) {
      if (!e.publicIP) continue;
      if (e.nodeName !== node.name) othersPublic.add(e.publicIP);
      else if (e.type === 'proxy' && mine.includes(gw) && !adminWritten.has(e.publicIP)) nodeWritten.add(e.publicIP);
    }
  }
  const acceptable = (ip: string) => isIP(ip) !== 0 && !forbiddenTargetReason(ip) && !input.claimedByOtherNode(ip) && !othersPublic.has(ip);
  const ipAddresses = [...adminWritten, ...[...nodeWritten].filter((ip) => !adminWritten.has(ip) && acceptable(ip))];
  return { dnsNames: [node.name, ...proxyInternalServiceNames(input.namespace)], ipAddresses };
}
