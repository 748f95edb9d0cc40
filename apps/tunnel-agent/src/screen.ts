import { AddressIndex, ENDPOINT_CONFIG_KEYS, parseCidr, parseIp, parseWireguardKey, type Endpoint, type Gateway, type NodeInfo } from '@raven/api-types';

/** Prefixes shorter than this are never routed into a tunnel, whatever a Gateway's status says. */
export const MIN_PREFIX_LENGTH = 8;

export interface Screened {
  gateways: Gateway[];
  /** One sentence per value left out, for logs and the agent's readiness detail. */
  dropped: string[];
}

/**
 * Checks every value of the Gateways that the planner turns into kernel state or tunnel config, and leaves out
 * each bad one alone: a malformed subnet, a subnet that would capture a protected address (this node's underlay,
 * the apiserver, any gateway's public address) or is too wide, an invalid private IP, public IP or key. One bad
 * entry never costs the rest of the plan.
 */
export function screenGateways(gateways: readonly Gateway[], protectedIPs: readonly string[]): Screened {
  const dropped: string[] = [];
  const publicIPs = gateways.flatMap((g) => [...(g.spec?.endpoints ?? []), ...(g.status?.activeEndpoints ?? [])].map((e) => e.publicIP).filter((ip): ip is string => !!parseIp(ip)));
  const guarded = new AddressIndex(new Set([...protectedIPs.filter((ip) => !!parseIp(ip)), ...publicIPs]));

  const subnetProblem = (subnet: string): string | undefined => {
    const parsed = parseCidr(subnet);
    if (!parsed) return 'is not a CIDR without host bits';
    if (parsed.prefixLength < MIN_PREFIX_LENGTH) return `is wider than /${MIN_PREFIX_LENGTH}`;
    const hit = guarded.firstIn(parsed);
    return hit ? `contains the protected address ${hit}` : undefined;
  };

  const endpoint = (gw: string, e: Endpoint): Endpoint => {
    let out = e;
    if (e.publicIP && !parseIp(e.publicIP)) {
      dropped.push(`Gateway ${gw}: endpoint ${e.nodeName} publicIP "${e.publicIP}" is not an IP address`);
      const { publicIP: _ignored, ...rest } = out;
      out = rest;
    }
    const key = e.config?.[ENDPOINT_CONFIG_KEYS.publicKey];
    if (key !== undefined && !parseWireguardKey(key)) {
      dropped.push(`Gateway ${gw}: endpoint ${e.nodeName} config.publicKey is not a WireGuard key`);
      const { publicKey: _ignored, ...config } = e.config!;
      out = { ...out, config };
    }
    return out;
  };

  const node = (gw: string, n: NodeInfo): NodeInfo => {
    const out: NodeInfo = { nodeName: n.nodeName };
    if (n.privateIP !== undefined) {
      if (parseIp(n.privateIP)) out.privateIP = n.privateIP;
      else dropped.push(`Gateway ${gw}: node ${n.nodeName} privateIP "${n.privateIP}" is not an IP address`);
    }
    if (n.subnets) {
      out.subnets = n.subnets.filter((s) => {
        const problem = s === '' ? undefined : subnetProblem(s);
        if (problem) dropped.push(`Gateway ${gw}: node ${n.nodeName} subnet "${s}" ${problem}`);
        return s !== '' && !problem;
      });
    }
    return out;
  };

  const screened = gateways.map((g) => {
    const name = g.metadata.name;
    const spec = g.spec && { ...g.spec, endpoints: g.spec.endpoints?.map((e) => endpoint(name, e)) };
    const status = g.status && {
      ...g.status,
      activeEndpoints: g.status.activeEndpoints?.map((e) => endpoint(name, e)),
      nodes: g.status.nodes?.map((n) => node(name, n)),
    };
    return { ...g, spec, status } as Gateway;
  });
  return { gateways: screened, dropped };
}
