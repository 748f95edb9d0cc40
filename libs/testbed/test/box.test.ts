import { describe, expect, it } from 'vitest';
import {
  BoxTopologyError, formatConnectivity, nodeIptables, parsePingSummary, resolveTopology, routerIptables, walkthroughTopology,
  type BoxTopology, type ConnectivityRow,
} from '../src/index.ts';

const twoDomains = (): BoxTopology => ({
  domains: [
    { name: 'east', gateway: 'gw-east', lan: '172.16.9.0/24', wanIP: '198.18.0.41', nodes: [{ name: 'east-a', internalIP: '172.16.9.10', podCIDR: '10.224.9.0/26' }] },
    { name: 'west', lan: '172.16.9.0/24', wanIP: '198.18.0.51', nodes: [{ name: 'west-a', internalIP: '172.16.9.10', podCIDR: '10.224.9.64/26', publicIP: '198.18.0.52' }] },
  ],
});

describe('walkthroughTopology', () => {
  it('reads the six walkthrough nodes into three domains, the cloud node exposed at 198.18.0.11', () => {
    const topology = resolveTopology(walkthroughTopology());
    expect(topology.domains.map((d) => [d.name, d.gateway, d.lan.text, d.routerIP, d.wanIP])).toEqual([
      ['cloud', 'gw-cloud', '192.168.0.0/24', '192.168.0.1', '198.18.0.10'],
      ['hangzhou', 'gw-hangzhou', '172.16.2.0/24', '172.16.2.1', '198.18.0.21'],
      ['qingdao', 'gw-qingdao', '172.16.1.0/24', '172.16.1.1', '198.18.0.31'],
    ]);
    const cloud = topology.domains[0]!.nodes;
    expect(cloud.map((n) => [n.name, n.internalIP, n.podCIDR.text, n.podGatewayIP, n.podIP, n.publicIP])).toEqual([
      ['izwz9dohcv74iegqecp4axz', '192.168.0.195', '10.224.0.128/26', '10.224.0.129', '10.224.0.130', '198.18.0.11'],
      ['izwz9ey0js5z7mornclpd6z', '192.168.0.196', '10.224.0.0/26', '10.224.0.1', '10.224.0.2', undefined],
    ]);
    expect(topology.domains.flatMap((d) => d.nodes).filter((n) => n.publicIP)).toHaveLength(1);
    expect(topology.internetHostIP).toBe('198.18.0.1');
  });
});

describe('resolveTopology', () => {
  it('accepts the same InternalIP and LAN in two domains', () => {
    const topology = resolveTopology(twoDomains());
    expect(topology.domains.map((d) => d.nodes[0]!.internalIP)).toEqual(['172.16.9.10', '172.16.9.10']);
    expect(topology.domains[1]!.gateway).toBeUndefined();
  });

  const broken: Array<[string, (t: BoxTopology) => void, RegExp]> = [
    ['a node name used twice', (t) => (t.domains[1]!.nodes[0]!.name = 'east-a'), /defined twice/],
    ['two nodes with one InternalIP in a domain', (t) => t.domains[0]!.nodes.push({ name: 'east-b', internalIP: '172.16.9.10', podCIDR: '10.224.9.128/26' }), /already used/],
    ['an InternalIP outside the LAN', (t) => (t.domains[0]!.nodes[0]!.internalIP = '172.16.8.10'), /not a host address/],
    ['the router address on a node', (t) => (t.domains[0]!.nodes[0]!.internalIP = '172.16.9.1'), /already used/],
    ['overlapping pod CIDRs', (t) => (t.domains[1]!.nodes[0]!.podCIDR = '10.224.9.0/24'), /overlaps east-a/],
    ['a pod CIDR outside the pod range', (t) => (t.domains[0]!.nodes[0]!.podCIDR = '10.225.0.0/26'), /outside the pod range/],
    ['a public IP equal to a router WAN address', (t) => (t.domains[1]!.nodes[0]!.publicIP = '198.18.0.41'), /used twice/],
    ['a WAN address off the internet', (t) => (t.domains[0]!.wanIP = '198.19.0.41'), /not a host address of the internet/],
    ['a domain name unfit for interface names', (t) => (t.domains[0]!.name = 'eastern-region'), /must match/],
    ['a LAN inside the pod range', (t) => (t.domains[0]!.lan = '10.224.200.0/24'), /overlaps/],
    ['a malformed CIDR', (t) => (t.domains[0]!.nodes[0]!.podCIDR = '10.224.9.0'), /not an IPv4 CIDR/],
  ];
  it.each(broken)('rejects %s', (_, breakIt, message) => {
    const topology = twoDomains();
    breakIt(topology);
    expect(() => resolveTopology(topology)).toThrow(BoxTopologyError);
    expect(() => resolveTopology(topology)).toThrow(message);
  });
});

describe('firewall scripts', () => {
  const topology = resolveTopology(walkthroughTopology());
  it('gives an exposed node 1:1 NAT and lets nothing else in from the internet', () => {
    const script = routerIptables(topology.domains[0]!);
    expect(script).toContain('-A PREROUTING -d 198.18.0.11/32 -j DNAT --to-destination 192.168.0.195');
    expect(script).toContain('-A POSTROUTING -o wan0 -s 192.168.0.195/32 -j SNAT --to-source 198.18.0.11');
    expect(script.indexOf('SNAT')).toBeLessThan(script.indexOf('-o wan0 -j MASQUERADE'));
    expect(script).toContain('-A FORWARD -i wan0 -j DROP');
    expect(routerIptables(topology.domains[1]!)).not.toContain('DNAT --to');
  });

  it('masquerades pod traffic that leaves the cluster pod range, in its own chain', () => {
    const script = nodeIptables(topology.domains[1]!.nodes[0]!, topology);
    expect(script).toContain('-A POSTROUTING -j BOX-CNI-MASQ');
    expect(script).toContain('-A BOX-CNI-MASQ -s 10.224.1.128/26 ! -d 10.224.0.0/16 -j MASQUERADE');
  });
});

describe('ping output', () => {
  it('parses replies and round-trip times', () => {
    const out = '--- 10.224.1.2 ping statistics ---\n3 packets transmitted, 2 received, 33.3333% packet loss, time 403ms\nrtt min/avg/max/mdev = 0.041/0.052/0.063/0.011 ms\n';
    expect(parsePingSummary(out)).toEqual({ sent: 3, received: 2, lossPercent: 33.3333, rttAvgMs: 0.052 });
  });

  it('parses total loss with errors, and no summary at all', () => {
    const out = '--- 10.224.2.2 ping statistics ---\n2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 1001ms\n';
    expect(parsePingSummary(out)).toEqual({ sent: 2, received: 0, lossPercent: 100 });
    expect(parsePingSummary('ping: connect: Network is unreachable\n')).toBeUndefined();
  });

  it('formats a connectivity table with verdicts', () => {
    const row = (from: string, received: number, expected: boolean): ConnectivityRow => ({
      from, to: '10.0.0.1', toLabel: 'pod', sent: 2, received, lossPercent: received ? 0 : 100, reachable: received > 0, expected, ok: received > 0 === expected,
      ...(received ? { rttAvgMs: 0.5 } : {}),
    });
    const table = formatConnectivity([row('a', 2, true), row('bb', 0, true)]).split('\n');
    expect(table[0]).toMatch(/^from\s+to\s+replies\s+rtt avg\s+verdict$/);
    expect(table[1]).toMatch(/^a\s+pod \(10\.0\.0\.1\)\s+2\/2\s+0\.50 ms\s+ok$/);
    expect(table[2]).toContain('UNEXPECTED (wanted reachable)');
  });
});
