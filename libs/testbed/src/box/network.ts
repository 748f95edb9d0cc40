import { hostExec, NetnsExec } from '@raven/netlink';
import { addAddress, createBridge, createVethPair, setLinkUp, type Netns } from '../netns.ts';
import type { ResolvedDomain, ResolvedNode, ResolvedTopology } from './topology.ts';

/** Interface names, the same in every box. */
export const IFACES = {
  /** Internet namespace: the bridge all router WANs plug into (holds the internet host address). */
  internetBridge: 'inet0',
  /** Router: its internet side. */
  routerWan: 'wan0',
  /** Router: the LAN bridge, holding the LAN gateway address. */
  routerLan: 'lan0',
  /** Node: the underlay interface holding the InternalIP. */
  nodeUnderlay: 'eth0',
  /** Node: its end of the pod veth (the pod CIDR's first address). */
  nodePodVeth: 'pod0',
  /** Pod: its interface. */
  pod: 'eth0',
} as const;

/** The nat chain of the box's CNI masquerade on every node. */
export const CNI_MASQ_CHAIN = 'BOX-CNI-MASQ';

/** Internet-namespace port of a router's WAN veth, router-namespace port of a node's LAN veth. */
export const wanPortName = (domain: string) => `wan-${domain}`;
export const lanPortName = (nodeIndex: number) => `lan0-n${nodeIndex}`;

/** A Netns value for a namespace the box manages itself (creation and deletion are the box's job). */
export function netnsHandle(name: string): Netns {
  const exec = new NetnsExec(name);
  return {
    name,
    exec,
    run: async (cmd, ...args) => (await exec.run(cmd, args)).stdout,
    destroy: async () => {
      await hostExec.run('ip', ['netns', 'delete', name]);
    },
  };
}

export async function addNetns(name: string): Promise<Netns> {
  await hostExec.run('ip', ['netns', 'add', name]);
  const ns = netnsHandle(name);
  await ip(ns, 'link', 'set', 'lo', 'up');
  return ns;
}

const ip = (ns: Netns, ...args: string[]) => hostExec.run('ip', ['-n', ns.name, ...args]);
const sysctl = (ns: Netns, ...settings: string[]) => ns.exec.run('sysctl', ['-q', '-e', '-w', ...settings]);
const iptablesRestore = (ns: Netns, script: string) => ns.exec.run('iptables-restore', ['--noflush'], { input: script });

/** Routers and nodes forward; no ICMP redirects, which would teach hosts shortcuts around the box's NAT and routes. */
const FORWARDING = ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.send_redirects=0', 'net.ipv4.conf.default.send_redirects=0'];

export async function buildInternet(inet: Netns, topology: ResolvedTopology, mtu: number): Promise<void> {
  await createBridge(inet, IFACES.internetBridge, { addresses: [`${topology.internetHostIP}/${topology.internet.bits}`], mtu });
}

/**
 * A domain router: masquerades the LAN to the internet; a node with a public IP gets 1:1 NAT (DNAT in, SNAT out, and
 * hairpin for LAN clients), like a cloud EIP. Nothing else gets in from the internet: only replies and DNATed flows
 * are forwarded, only replies are accepted locally.
 */
export async function buildRouter(inet: Netns, router: Netns, topology: ResolvedTopology, domain: ResolvedDomain, mtu: number): Promise<void> {
  // Bridged LAN traffic must not run through the router's iptables when br_netfilter happens to be loaded.
  await sysctl(router, ...FORWARDING, 'net.bridge.bridge-nf-call-iptables=0');
  const wanPort = wanPortName(domain.name);
  await createVethPair(
    { ns: router, name: IFACES.routerWan, addresses: [`${domain.wanIP}/${topology.internet.bits}`], mtu, up: false },
    { ns: inet, name: wanPort, mtu, up: false },
  );
  await ip(inet, 'link', 'set', wanPort, 'master', IFACES.internetBridge);
  await setLinkUp(inet, wanPort);
  for (const node of domain.nodes) {
    if (node.publicIP) await addAddress(router, IFACES.routerWan, `${node.publicIP}/32`);
  }
  await setLinkUp(router, IFACES.routerWan);
  await createBridge(router, IFACES.routerLan, { addresses: [`${domain.routerIP}/${domain.lan.bits}`], mtu });
  await iptablesRestore(router, routerIptables(domain));
}

/** The router's rules (BoxNatMode says how each NAT mode behaves); `ResolvedDomain.nat` picks the WAN MASQUERADE. */
export function routerIptables(domain: ResolvedDomain): string {
  const { routerWan: wan, routerLan: lan } = IFACES;
  const exposed = domain.nodes.filter((node) => node.publicIP !== undefined);
  return [
    '*nat',
    ...exposed.map((node) => `-A PREROUTING -d ${node.publicIP}/32 -j DNAT --to-destination ${node.internalIP}`),
    ...exposed.map((node) => `-A POSTROUTING -o ${wan} -s ${node.internalIP}/32 -j SNAT --to-source ${node.publicIP}`),
    `-A POSTROUTING -o ${wan} -j MASQUERADE${domain.nat === 'symmetric' ? ' --random-fully' : ''}`,
    ...(exposed.length > 0 ? [`-A POSTROUTING -o ${lan} -s ${domain.lan.text} -m conntrack --ctstate DNAT -j MASQUERADE`] : []),
    'COMMIT',
    '*filter',
    `-A INPUT -i ${wan} -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT`,
    `-A INPUT -i ${wan} -j DROP`,
    `-A FORWARD -i ${wan} -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT`,
    `-A FORWARD -i ${wan} -j DROP`,
    'COMMIT',
    '',
  ].join('\n');
}

/** A node on its domain LAN with its pod, as a host-gw CNI would wire it. */
export async function buildNode(
  router: Netns, node: Netns, pod: Netns, topology: ResolvedTopology, domain: ResolvedDomain, index: number, mtu: number,
): Promise<void> {
  const spec = domain.nodes[index]!;
  await sysctl(node, ...FORWARDING);
  const lanPort = lanPortName(index);
  await createVethPair(
    { ns: node, name: IFACES.nodeUnderlay, addresses: [`${spec.internalIP}/${domain.lan.bits}`], mtu },
    { ns: router, name: lanPort, mtu, up: false },
  );
  await ip(router, 'link', 'set', lanPort, 'master', IFACES.routerLan);
  await setLinkUp(router, lanPort);
  await createVethPair(
    { ns: node, name: IFACES.nodePodVeth, addresses: [`${spec.podGatewayIP}/${spec.podCIDR.bits}`], mtu },
    { ns: pod, name: IFACES.pod, addresses: [`${spec.podIP}/${spec.podCIDR.bits}`], mtu },
  );
  await ip(pod, 'route', 'add', 'default', 'via', spec.podGatewayIP, 'dev', IFACES.pod);
  await restoreNodeRoutes(node, domain, spec);
  await iptablesRestore(node, nodeIptables(spec, topology));
}

/** Default route via the router and host-gw routes to the other same-domain nodes' pod CIDRs (idempotent). */
export async function restoreNodeRoutes(node: Netns, domain: ResolvedDomain, spec: ResolvedNode): Promise<void> {
  await ip(node, 'route', 'replace', 'default', 'via', domain.routerIP, 'dev', IFACES.nodeUnderlay);
  for (const peer of domain.nodes) {
    if (peer.name === spec.name) continue;
    await ip(node, 'route', 'replace', peer.podCIDR.text, 'via', peer.internalIP, 'dev', IFACES.nodeUnderlay);
  }
}

export function nodeIptables(spec: ResolvedNode, topology: ResolvedTopology): string {
  return [
    '*nat',
    `:${CNI_MASQ_CHAIN} - [0:0]`,
    `-A POSTROUTING -j ${CNI_MASQ_CHAIN}`,
    `-A ${CNI_MASQ_CHAIN} -s ${spec.podCIDR.text} ! -d ${topology.podRange.text} -j MASQUERADE`,
    'COMMIT',
    '',
  ].join('\n');
}

/** Links of a namespace other than loopback. */
export async function listLinks(ns: Netns): Promise<string[]> {
  const { stdout } = await ip(ns, '-j', 'link', 'show');
  const links = JSON.parse(stdout) as Array<{ ifname: string }>;
  return links.map((link) => link.ifname).filter((name) => name !== 'lo');
}

export async function setLinkDown(ns: Netns, dev: string): Promise<void> {
  await ip(ns, 'link', 'set', dev, 'down');
}
