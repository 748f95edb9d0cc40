import { isIP } from 'node:net';
import {
  activeEndpointsOfType, forbiddenTargetReason, isExposed, isProxyCandidate, proxyClientRole, proxyReachablePorts, proxyServerAddress,
  type Gateway, type NodeView,
} from '@raven/api-types';

/** A proxy-server to hold tunnels to; `node` is set for discovered servers (their certificate must name it). */
export interface ServerTarget {
  address: string;
  node?: string;
}

export interface ClientPlan {
  /** Serve (hold tunnels) or stay idle; `reason` says why, for logs and /readyz. */
  active: boolean;
  reason: string;
  /** Nodes this client dials: name -> InternalIP, all of them in this client's domain. */
  members: Map<string, string>;
  servers: ServerTarget[];
  /** Target ports the proxy serves (kubelet, plus exposed Gateways' port lists). */
  ports: Set<number>;
  /** The node is a proxy endpoint candidate: it renews the proxy heartbeat Lease. */
  candidate: boolean;
}

/**
 * What the proxy-client on `nodeName` should do, from the Gateways and its own Node:
 *  - in a non-exposed Gateway: serve while elected as one of its active proxy endpoints, for the Gateway's nodes;
 *  - in no Gateway: serve for itself alone;
 *  - in an exposed Gateway: nothing (the cloud side is served by proxy-server directly).
 * Servers are the active proxy endpoints of every exposed Gateway, plus any configured statically.
 */
export function planClient(nodeName: string, node: NodeView | undefined, gateways: readonly Gateway[], staticServers: readonly string[]): ClientPlan {
  const servers = new Map<string, ServerTarget>();
  for (const gw of gateways) {
    if (!isExposed(gw)) continue;
    for (const ep of activeEndpointsOfType(gw, 'proxy')) {
      const address = proxyServerAddress(ep);
      if (address) servers.set(address, { address, node: ep.nodeName });
    }
  }
  for (const address of staticServers) servers.set(address, { address });
  const { http, https } = proxyReachablePorts(gateways);
  const base = {
    servers: [...servers.values()].sort((a, b) => a.address.localeCompare(b.address)),
    ports: new Set([...http, ...https]),
    candidate: isProxyCandidate(nodeName, gateways),
  };
  const idle = (reason: string): ClientPlan => ({ ...base, active: false, reason, members: new Map() });
  if (!node) return idle(`node ${nodeName} not found`);
  const role = proxyClientRole({ name: nodeName, gateway: node.gateway }, gateways);
  if (role.serves === 'self') {
    const ip = node.internalIPs[0];
    if (!ip) return idle('node has no InternalIP');
    return { ...base, active: true, reason: 'node in no Gateway: serving itself', members: new Map([[nodeName, ip]]) };
  }
  if (role.serves === 'nothing') return idle(role.reason);
  const gw = gateways.find((g) => g.metadata.name === role.gateway)!;
  const members = new Map<string, string>();
  for (const n of gw.status?.nodes ?? []) if (n.privateIP && isIP(n.privateIP)) members.set(n.nodeName, n.privateIP);
  if (!members.has(nodeName) && node.internalIPs[0]) members.set(nodeName, node.internalIPs[0]);
  return { ...base, active: true, reason: `elected proxy endpoint of Gateway ${gw.metadata.name}`, members };
}

export class DialRefused extends Error {
  override readonly name = 'DialRefused';
}

/** This proxy-client's node and listener ports, and whether loopback targets are allowed (tests only). */
export interface DialGuard {
  node: string;
  ports: readonly number[];
  allowLoopback: boolean;
}

/**
 * Where a DIAL_REQ may go: a member node (by name or by its InternalIP) on a proxy port. Anything else, including
 * an address that is some other domain's node or no node at all, is refused; so are loopback, link-local (cloud
 * metadata) and other never-dialled addresses whatever a member's Node says, and this client's own listeners.
 */
export function resolveDial(plan: Pick<ClientPlan, 'members' | 'ports'>, host: string, port: number, guard: DialGuard): { ip: string; node: string } {
  if (!plan.ports.has(port)) throw new DialRefused(`port ${port} is not a proxy port`);
  const found = member(plan, host);
  if (!found) throw new DialRefused(`${host} is not a node of this proxy-client's domain`);
  const why = forbiddenTargetReason(found.ip, { allowLoopback: guard.allowLoopback });
  if (why) throw new DialRefused(`node ${found.node}'s address ${found.ip} is ${why}`);
  if (found.node === guard.node && guard.ports.includes(port)) throw new DialRefused(`${found.node}:${port} is this proxy-client's own listener`);
  return found;
}

function member(plan: Pick<ClientPlan, 'members'>, host: string): { ip: string; node: string } | undefined {
  const byName = plan.members.get(host);
  if (byName) return { ip: byName, node: host };
  if (isIP(host)) {
    for (const [node, ip] of plan.members) if (ip === host) return { ip, node };
  }
  return undefined;
}
