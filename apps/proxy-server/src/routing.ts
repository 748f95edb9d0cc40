import { isIP } from 'node:net';
import { PORTS, PROXY_NODE_QUERY, forbiddenTargetReason } from '@raven/api-types';
import { domainKeyOf, type ClusterView, type DomainKey } from './cluster-view.ts';

export type Frontend = 'http' | 'https';

/** Why a request was not forwarded; also the `reason` label of the error metric. */
export type RouteFailure =
  | 'no-target' | 'bad-port' | 'unknown-node' | 'unknown-pod' | 'unknown-ip' | 'ambiguous-ip' | 'forbidden-port' | 'forbidden-address' | 'no-address';

export class RouteError extends Error {
  override readonly name = 'RouteError';
  constructor(readonly status: number, readonly reason: RouteFailure, message: string) {
    super(message);
  }
}

export interface RouteRequest {
  frontend: Frontend;
  /** Host header. */
  host: string | undefined;
  /** X-Tunnel-Proxy-Host header. */
  proxyHost: string | undefined;
  /** Request target: path and query. */
  url: string;
  /** The TLS server name (SNI) the caller connected with (HTTPS front end). */
  serverName?: string;
}

export interface RouteTarget {
  node: string;
  domain: DomainKey;
  /** The node's InternalIP, dialed inside its own domain. */
  ip: string;
  port: number;
  /** Re-originate TLS to the target (requests that came in through the HTTPS front end). */
  tls: boolean;
  /** Which part of the request named the node. */
  via: 'header' | 'query' | 'host' | 'sni' | 'pod' | 'ip';
  /** No other node has this InternalIP: only then may a target's certificate name the IP instead of the node. */
  ipUnique: boolean;
}

/** Kubelet paths that name a pod: /containerLogs, /exec, /attach, /run /{ns}/{pod}/..., /portForward/{ns}/{pod}. */
const POD_PATH = /^\/(?:containerLogs|exec|attach|run|portForward)\/([^/?]+)\/([^/?]+)/;

export function podOfKubeletPath(path: string): { namespace: string; pod: string } | undefined {
  const m = POD_PATH.exec(path);
  if (!m) return undefined;
  try {
    return { namespace: decodeURIComponent(m[1]!), pod: decodeURIComponent(m[2]!) };
  } catch {
    return undefined;
  }
}

/** Splits `name`, `name:port`, `ip`, `[v6]:port`; a bare IPv6 address has no port. */
export function splitHostPort(value: string): { host: string; port: number | undefined } {
  const v = value.trim();
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(v);
  if (bracketed) return { host: bracketed[1]!, port: bracketed[2] !== undefined ? Number(bracketed[2]) : undefined };
  if (isIP(v) === 6) return { host: v, port: undefined };
  const colon = v.lastIndexOf(':');
  if (colon < 0) return { host: v, port: undefined };
  const port = v.slice(colon + 1);
  return { host: v.slice(0, colon), port: /^\d{1,5}$/.test(port) ? Number(port) : NaN };
}

/**
 * Decides which node a request is for, and which port, without I/O except the pod lookup:
 *  1. `X-Tunnel-Proxy-Host`, 2. `?nodeName=`, 3. a Host naming a node, 4. a TLS server name naming a node (the
 *  kube-apiserver's node proxy, `/api/v1/nodes/<n>/proxy/...`, dials the node by name but keeps its caller's Host),
 *  5. for kubelet pod paths, the pod's node, 6. a Host IP literal, when exactly one node in the cluster has that
 *  InternalIP.
 * The port comes from the header, or from the Host when the Host names the target (its name or one of its
 * addresses), and must be one the proxy serves for this front end's scheme. A Host that does not name the target is
 * the caller's own (the kube-apiserver keeps its caller's Host for the node proxy and port-forward): the port is then
 * the kubelet's, which is all those paths reach (the node proxy's `<node>:<port>` form cannot be told apart and is
 * not supported).
 */
export async function routeRequest(
  req: RouteRequest,
  view: ClusterView,
  podNode: (namespace: string, pod: string) => Promise<string | undefined>,
): Promise<RouteTarget> {
  const url = new URL(req.url, 'http://target');
  const fromHeader = req.proxyHost ? splitHostPort(req.proxyHost) : undefined;
  const fromHost = req.host ? splitHostPort(req.host) : undefined;
  const sniNode = req.frontend === 'https' && !fromHeader?.host && req.serverName && view.node(req.serverName) && !(fromHost?.host && !isIP(fromHost.host)) ? req.serverName : undefined;
  const checkPort = (port: number | undefined): number => {
    if (port === undefined) throw new RouteError(400, 'no-target', 'raven proxy: the target port is unknown; send Host: <node>:<port>');
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RouteError(400, 'bad-port', 'raven proxy: the target port is not a valid port');
    return port;
  };
  // Refuse a bad port before any lookup, unless the node comes from the server name or the pod (then it may be the caller's).
  if (fromHeader || (!sniNode && !podOfKubeletPath(url.pathname))) checkPort(fromHeader?.port ?? fromHost?.port);

  const queryNode = url.searchParams.get(PROXY_NODE_QUERY) || undefined;
  let node: string | undefined;
  let via: RouteTarget['via'];
  if (fromHeader?.host) [node, via] = [byName(fromHeader.host, view), 'header'];
  else if (queryNode) [node, via] = [byName(queryNode, view), 'query'];
  else if (fromHost?.host && !isIP(fromHost.host)) [node, via] = [byName(fromHost.host, view), 'host'];
  else if (sniNode) [node, via] = [sniNode, 'sni'];
  else {
    const pod = podOfKubeletPath(url.pathname);
    if (pod) {
      node = await podNode(pod.namespace, pod.pod);
      if (!node) throw new RouteError(404, 'unknown-pod', `raven proxy: pod ${pod.namespace}/${pod.pod} not found or not scheduled`);
      via = 'pod';
    } else if (fromHost?.host) {
      node = byIp(fromHost.host, view);
      via = 'ip';
    } else {
      throw new RouteError(400, 'no-target', 'raven proxy: no target node in the request (Host, X-Tunnel-Proxy-Host or ?nodeName=)');
    }
  }

  const info = view.node(node);
  if (!info) throw new RouteError(404, 'unknown-node', `raven proxy: node ${node} is not known`);
  const hostIsTarget = fromHost?.host !== undefined && (fromHost.host === node || info.internalIPs.includes(fromHost.host));
  const kubeletPort = req.frontend === 'https' ? PORTS.kubeletSecure : PORTS.kubeletReadOnly;
  const port = checkPort(fromHeader?.port ?? ((via === 'sni' || via === 'pod') && !hostIsTarget ? kubeletPort : fromHost?.port));
  const ports = view.ports();
  const tls = req.frontend === 'https';
  if (!(tls ? ports.https : ports.http).has(port)) {
    throw new RouteError(403, 'forbidden-port', `raven proxy: port ${port} is not an ${tls ? 'HTTPS' : 'HTTP'} proxy port (proxyConfig.${tls ? 'proxyHTTPSPort' : 'proxyHTTPPort'} of an exposed Gateway, or the kubelet's)`);
  }
  const ip = info.internalIPs[0];
  if (!ip) throw new RouteError(502, 'no-address', `raven proxy: node ${node} has no InternalIP`);
  return { node, domain: domainKeyOf(info), ip, port, tls, via, ipUnique: view.nodesWithInternalIP(ip).length === 1 };
}

function byName(nameOrIp: string, view: ClusterView): string {
  if (isIP(nameOrIp)) return byIp(nameOrIp, view);
  if (!view.node(nameOrIp)) throw new RouteError(404, 'unknown-node', `raven proxy: node ${nameOrIp} is not known`);
  return nameOrIp;
}

function byIp(ip: string, view: ClusterView): string {
  const nodes = view.nodesWithInternalIP(ip);
  if (nodes.length === 0) throw new RouteError(404, 'unknown-ip', `raven proxy: no node has InternalIP ${ip}`);
  if (nodes.length > 1) {
    const names = nodes.map((n) => n.metadata.name).sort();
    throw new RouteError(409, 'ambiguous-ip', `raven proxy: InternalIP ${ip} is ambiguous (nodes ${names.join(', ')}); address the node by name, X-Tunnel-Proxy-Host or ?nodeName=`);
  }
  return nodes[0]!.metadata.name;
}

/** This proxy-server's own node, addresses and listener ports, which no request may reach through it. */
export interface SelfFacts {
  node: string;
  domain: DomainKey | undefined;
  ips: readonly string[];
  ports: readonly number[];
  /** Tests whose nodes live on 127.0.0.0/8 only (an insecure flag). */
  allowLoopback: boolean;
}

/**
 * Refuses targets the proxy must never dial, whatever a Node's (node-writable) addresses say: loopback, link-local
 * (cloud metadata), unspecified and multicast addresses, and this proxy's own listeners (a Gateway that lists 10264 as
 * a proxy port must not make the proxy connect to itself).
 */
export function refuseForbiddenTarget(target: RouteTarget, self: SelfFacts): void {
  const why = forbiddenTargetReason(target.ip, { allowLoopback: self.allowLoopback });
  if (why) throw new RouteError(403, 'forbidden-address', `raven proxy: node ${target.node}'s address ${target.ip} is ${why}; the proxy does not dial it`);
  const itself = target.node === self.node || (target.domain === self.domain && self.ips.includes(target.ip));
  if (itself && self.ports.includes(target.port)) throw new RouteError(403, 'forbidden-address', `raven proxy: ${target.node}:${target.port} is this proxy-server's own listener`);
}
