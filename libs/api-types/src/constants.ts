/** Names, ports and keys shared with upstream OpenYurt Raven. One place for all of them. */

export const GROUP = 'raven.openyurt.io';
export const V1ALPHA1 = 'v1alpha1';
export const V1BETA1 = 'v1beta1';
export const GATEWAY_KIND = 'Gateway';
export const GATEWAY_PLURAL = 'gateways';
export const GATEWAY_CRD_NAME = `${GATEWAY_PLURAL}.${GROUP}`;

export const SYSTEM_NAMESPACE = 'kube-system';

export const LABELS = {
  gateway: 'raven.openyurt.io/gateway',
  gatewayType: 'raven.openyurt.io/gateway-type',
  endpointsName: 'raven.openyurt.io/endpoints-name',
  discardService: 'svc.openyurt.io/discard',
  managedBy: 'app.kubernetes.io/managed-by',
} as const;

export const ANNOTATIONS = {
  /** On a Gateway: comma list of CIDRs appended to the subnets of its active tunnel node. */
  extraAllowedSourceCIDRs: 'raven.openyurt.io/extra-allowed-source-cidrs',
  /** On a Node, set by the cluster admin: the node's public IP when the spec does not give one. */
  publicIP: 'raven.openyurt.io/public-ip',
} as const;

export const MANAGED_BY = 'raven-ts';

export const CONFIGMAPS = {
  ravenConfig: 'raven-cfg',
  agentConfig: 'raven-agent-config',
  edgeTunnelNodes: 'edge-tunnel-nodes',
} as const;

export const RAVEN_CFG_KEYS = { l3Tunnel: 'enable-l3-tunnel', l7Proxy: 'enable-l7-proxy' } as const;
export const EDGE_TUNNEL_NODES_KEY = 'tunnel-nodes';
export const AGENT_CONFIG_KEYS = {
  proxyInternalSecureAddr: 'proxy-internal-secure-addr',
  proxyInternalInsecureAddr: 'proxy-internal-insecure-addr',
  proxyExternalAddr: 'proxy-external-addr',
  tunnelBindAddr: 'tunnel-bind-addr',
} as const;

export const SERVICES = {
  proxyInternal: 'x-raven-proxy-internal-svc',
  proxyPublicPrefix: 'x-raven-proxy-svc',
  tunnelPublicPrefix: 'x-raven-tunnel-svc',
} as const;

export const PORTS = {
  proxyTunnel: 10262,
  proxyInternalSecure: 10263,
  proxyInternalInsecure: 10264,
  tunnel: 4500,
  agentMetrics: 10265,
  proxyMetrics: 10266,
  health: 10275,
  /** UDP echo between gateways through the tunnel, for reachability and RTT (ours; upstream has none). */
  tunnelProbe: 10268,
  /** UDP NAT discovery responder on the central gateway, two ports (ours; upstream classifies against public STUN). */
  natDiscovery: 10269,
  natDiscoveryAlt: 10270,
  kubeletSecure: 10250,
  kubeletReadOnly: 10255,
} as const;

export const EVENTS = { elected: 'ActiveEndpointElected', lost: 'ActiveEndpointLost', extraCIDRsRefused: 'ExtraAllowedSourceCIDRsRefused' } as const;

export const ENDPOINT_TYPES = ['proxy', 'tunnel'] as const;
export type EndpointType = (typeof ENDPOINT_TYPES)[number];
export const EXPOSE_TYPES = ['', 'PublicIP', 'LoadBalancer'] as const;
export type ExposeType = (typeof EXPOSE_TYPES)[number];
/** Upstream Raven's natType values. */
export const NAT_TYPES = ['FullCone', 'Restricted', 'PortRestricted', 'Symmetric', 'Unknown'] as const;
export type NatType = (typeof NAT_TYPES)[number];

/** Config keys the control plane writes into each active endpoint's `config`. */
export const ENDPOINT_CONFIG_KEYS = {
  l7Proxy: RAVEN_CFG_KEYS.l7Proxy,
  l3Tunnel: RAVEN_CFG_KEYS.l3Tunnel,
  /** WireGuard public key of a tunnel endpoint, published by its agent. */
  publicKey: 'publicKey',
} as const;

export const DEFAULT_ENDPOINT_PORT: Record<EndpointType, number> = { proxy: PORTS.proxyTunnel, tunnel: PORTS.tunnel };

/** Interface, table and kernel object names of the L3 data path (upstream-compatible). */
export const DATAPATH = {
  vxlanDevice: 'raven0',
  vxlanVni: 200,
  vxlanPort: 4472,
  wireguardDevice: 'raven-wg0',
  routeTableVxlan: 9027,
  routeTableVpn: 9028,
  fwmark: 0x40,
  rulePriorityVxlan: 100,
  rulePriorityVpn: 101,
  markSet: 'raven-mark-set',
  skipNatSet: 'raven-skip-nat-set',
  markChain: 'RAVEN-MARK-CHAIN',
  postroutingChain: 'RAVEN-POSTROUTING',
  mtuOverhead: { vxlan: 50, wireguard: 80, ipsec: 64 },
} as const;
