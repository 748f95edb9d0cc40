import { PORTS, SERVICES } from './constants.ts';
import type { Endpoint, Gateway } from './gateway.ts';
import { endpointPort, isExposed } from './helpers.ts';
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
 * Target ports reachable through the proxy, by scheme: the kubelet's, plus every exposed Gateway's proxyHTTPPort and
 * proxyHTTPSPort (the ports of x-raven-proxy-internal-svc; a port listed as both is HTTPS, as in that Service).
 */
export function proxyReachablePorts(gateways: readonly Gateway[]): { http: Set<number>; https: Set<number> } {
  const http = new Set<number>([KUBELET_PORTS.http]);
  const https = new Set<number>([KUBELET_PORTS.https]);
  for (const gw of gateways) {
    if (!isExposed(gw)) continue;
    const lists = gw.spec?.proxyConfig;
    for (const p of safePortList(lists?.proxyHTTPPort)) http.add(p);
    for (const p of safePortList(lists?.proxyHTTPSPort)) https.add(p);
  }
  for (const p of https) http.delete(p);
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
