import { describe, expect, it } from 'vitest';
import {
  assertWanAddressFree, BoxControlError, BoxTopologyError, canonicalPrefix, countedBytes, countSetupCommands, parseCountListing,
  resolveTopology, routerIptables, routerNatCommands, routerRulesSwap, sameLanTopology, udpBlockCommands, wanDelayCommands,
  wanReaddressCommands, type BoxCommand, type BoxNatMode, type BoxTopology, type ResolvedDomain,
} from '../src/index.ts';

const topology = (): BoxTopology => ({
  domains: [
    { name: 'east', gateway: 'gw-east', lan: '172.16.9.0/24', wanIP: '198.18.0.41', nodes: [
      { name: 'east-a', internalIP: '172.16.9.10', podCIDR: '10.224.9.0/26', publicIP: '198.18.0.42' },
      { name: 'east-b', gateway: 'gw-east-b', internalIP: '172.16.9.11', podCIDR: '10.224.9.64/26' },
    ] },
    { name: 'west', lan: '172.16.8.0/24', wanIP: '198.18.0.51', nodes: [{ name: 'west-a', internalIP: '172.16.8.10', podCIDR: '10.224.8.0/26' }] },
  ],
});

const domainOf = (nat: BoxNatMode | undefined, exposed: boolean): ResolvedDomain => {
  const spec = topology();
  spec.domains[0]!.nat = nat;
  if (!exposed) delete spec.domains[0]!.nodes[0]!.publicIP;
  return resolveTopology(spec).domains[0]!;
};

const commandLines = (commands: readonly BoxCommand[]) => commands.map((c) => [c.cmd, ...c.args].join(' '));

describe('router NAT modes', () => {
  const nat = (masquerade: string) => [
    '*nat',
    '-A PREROUTING -d 198.18.0.42/32 -j DNAT --to-destination 172.16.9.10',
    '-A POSTROUTING -o wan0 -s 172.16.9.10/32 -j SNAT --to-source 198.18.0.42',
    `-A POSTROUTING -o wan0 -j ${masquerade}`,
    '-A POSTROUTING -o lan0 -s 172.16.9.0/24 -m conntrack --ctstate DNAT -j MASQUERADE',
    'COMMIT',
  ];
  const filter = [
    '*filter',
    '-A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
    '-A INPUT -i wan0 -j DROP',
    '-A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT',
    '-A FORWARD -i wan0 -j DROP',
    'COMMIT',
    '',
  ];
  const cases: Array<[string, BoxNatMode | undefined, string]> = [
    ['defaults to plain MASQUERADE', undefined, 'MASQUERADE'],
    ['masquerade: plain MASQUERADE', 'masquerade', 'MASQUERADE'],
    ['symmetric: MASQUERADE --random-fully', 'symmetric', 'MASQUERADE --random-fully'],
  ];
  it.each(cases)('%s', (_, mode, masquerade) => {
    expect(routerIptables(domainOf(mode, true))).toBe([...nat(masquerade), ...filter].join('\n'));
  });

  it('renders a symmetric router without exposed nodes', () => {
    expect(routerIptables(domainOf('symmetric', false))).toBe(['*nat', '-A POSTROUTING -o wan0 -j MASQUERADE --random-fully', 'COMMIT', ...filter].join('\n'));
  });
});

describe('topology: nat and per-node gateways', () => {
  it('carries nat and resolves each node gateway, the domain one by default', () => {
    const resolved = resolveTopology(topology());
    expect(resolved.domains.map((d) => d.nat)).toEqual(['masquerade', 'masquerade']);
    expect(resolved.domains.flatMap((d) => d.nodes.map((n) => [n.name, n.gateway]))).toEqual([
      ['east-a', 'gw-east'], ['east-b', 'gw-east-b'], ['west-a', undefined],
    ]);
  });

  const broken: Array<[string, (t: BoxTopology) => void, RegExp]> = [
    ['an unknown nat mode', (t) => (t.domains[0]!.nat = 'cone' as BoxNatMode), /nat "cone" is not one of masquerade, symmetric/],
    ['an empty per-node gateway', (t) => (t.domains[1]!.nodes[0]!.gateway = ''), /west-a: gateway "" is not a valid Gateway name/],
    ['a per-node gateway unfit for a label', (t) => (t.domains[1]!.nodes[0]!.gateway = 'GW_West'), /not a valid Gateway name/],
  ];
  it.each(broken)('rejects %s', (_, breakIt, message) => {
    const spec = topology();
    breakIt(spec);
    expect(() => resolveTopology(spec)).toThrow(BoxTopologyError);
    expect(() => resolveTopology(spec)).toThrow(message);
  });

  it('builds the same-LAN topology: two Gateways behind one router', () => {
    const resolved = resolveTopology(sameLanTopology('symmetric'));
    expect(resolved.domains.map((d) => [d.name, d.nat, d.nodes.map((n) => n.gateway)])).toEqual([
      ['shared', 'symmetric', ['gw-shared-a', 'gw-shared-b']],
      ['remote', 'symmetric', ['gw-remote']],
    ]);
  });
});

describe('WAN readdressing', () => {
  const resolved = resolveTopology(topology());
  const taken: Array<[string, string, RegExp]> = [
    ['the internet host', '198.18.0.1', /used by the internet host/],
    ['another router', '198.18.0.51', /used by router west/],
    ['an exposed node', '198.18.0.42', /used by node east-a/],
    ['an address off the internet', '198.19.0.41', /not a host address of the internet 198\.18\.0\.0\/24/],
    ['the broadcast address', '198.18.0.255', /not a host address/],
    ['a malformed address', '198.18.0', /not an IPv4 address/],
  ];
  it.each(taken)('refuses %s', (_, ip, message) => {
    expect(() => assertWanAddressFree(resolved, 'east', ip)).toThrow(BoxTopologyError);
    expect(() => assertWanAddressFree(resolved, 'east', ip)).toThrow(message);
  });

  it('accepts a free address and the domain router\'s own', () => {
    expect(() => assertWanAddressFree(resolved, 'east', '198.18.0.99')).not.toThrow();
    expect(() => assertWanAddressFree(resolved, 'east', '198.18.0.41')).not.toThrow();
  });

  it('adds the new address before deleting the old one, secondaries promoted, then flushes conntrack', () => {
    expect(commandLines(wanReaddressCommands('198.18.0.41', '198.18.0.99', 24))).toEqual([
      'sysctl -q -w net.ipv4.conf.wan0.promote_secondaries=1',
      'ip address add 198.18.0.99/24 dev wan0',
      'ip address del 198.18.0.41/24 dev wan0',
      'conntrack -F',
    ]);
  });
});

describe('router NAT switch', () => {
  it('swaps exactly the box rules per table and flushes conntrack', () => {
    const before = domainOf('masquerade', false);
    const commands = routerNatCommands(before, { ...before, nat: 'symmetric' });
    expect(commandLines(commands)).toEqual(['iptables-restore --noflush', 'conntrack -F']);
    expect(commands[0]!.input).toBe(routerRulesSwap(before, { ...before, nat: 'symmetric' }));
    expect(commands[0]!.input).toBe([
      '*nat',
      '-D POSTROUTING -o wan0 -j MASQUERADE',
      '-A POSTROUTING -o wan0 -j MASQUERADE --random-fully',
      'COMMIT',
      '*filter',
      '-D INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-D INPUT -i wan0 -j DROP',
      '-D FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT',
      '-D FORWARD -i wan0 -j DROP',
      '-A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT',
      '-A INPUT -i wan0 -j DROP',
      '-A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED,DNAT -j ACCEPT',
      '-A FORWARD -i wan0 -j DROP',
      'COMMIT',
      '',
    ].join('\n'));
  });
});

describe('WAN delay', () => {
  const cases: Array<[number, string[]]> = [
    [50, ['tc qdisc replace dev wan0 root netem delay 50ms']],
    [2.5, ['tc qdisc replace dev wan0 root netem delay 2.5ms']],
    [0, ['tc qdisc del dev wan0 root']],
  ];
  it.each(cases)('%d ms', (ms, lines) => {
    expect(commandLines(wanDelayCommands(ms))).toEqual(lines);
  });

  it('tolerates a missing qdisc only when removing', () => {
    const [remove] = wanDelayCommands(0);
    expect(remove!.tolerate?.test('Error: Cannot delete qdisc with handle of zero.')).toBe(true);
    expect(remove!.tolerate?.test('RTNETLINK answers: No such file or directory')).toBe(true);
    expect(wanDelayCommands(10)[0]!.tolerate).toBeUndefined();
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY, 60_001])('rejects %d ms', (ms) => {
    expect(() => wanDelayCommands(ms)).toThrow(BoxControlError);
  });
});

describe('UDP block', () => {
  const save = (...forward: string[]) => ['*filter', ':INPUT ACCEPT [0:0]', ':FORWARD ACCEPT [0:0]', ...forward.map((r) => `-A FORWARD ${r}`), 'COMMIT', ''].join('\n');
  const ours = '-p udp -m comment --comment box-udp-block -j DROP';
  const box = '-i wan0 -j DROP';
  const insert = 'iptables -w -t filter -I FORWARD 1 -p udp -m comment --comment box-udp-block -j DROP';
  const remove = 'iptables -w -t filter -D FORWARD -p udp -m comment --comment box-udp-block -j DROP';
  const cases: Array<[string, boolean, string, string[]]> = [
    ['blocks: inserts at the top and flushes', true, save(box), [insert, 'conntrack -F']],
    ['blocks again: only flushes', true, save(ours, box), ['conntrack -F']],
    ['blocks with the rule pushed down: moves it to the top', true, save('-p tcp -j ACCEPT', ours, box), [remove, insert, 'conntrack -F']],
    ['blocks with a duplicate: leaves one', true, save(ours, box, ours), [remove, remove, insert, 'conntrack -F']],
    ['unblocks: removes it', false, save(ours, box), [remove]],
    ['unblocks a quoted duplicate too', false, save(ours, '-p udp -m comment --comment "box-udp-block" -j DROP'), [remove, remove]],
    ['unblocks when not blocked: nothing', false, save(box), []],
    ['ignores a look-alike comment', false, save('-p udp -m comment --comment box-udp-block-2 -j DROP'), []],
    ['blocks in an empty table', true, '', [insert, 'conntrack -F']],
  ];
  it.each(cases)('%s', (_, blocked, filterSave, lines) => {
    expect(commandLines(udpBlockCommands(blocked, filterSave))).toEqual(lines);
  });

  const fromPeer = '-s 198.18.0.31/32 -p udp -m comment --comment box-udp-block -j DROP';
  const toPeer = '-d 198.18.0.31/32 -p udp -m comment --comment box-udp-block -j DROP';
  it.each<[string, boolean, string, string[]]>([
    ['blocks one peer: two rules at the top, in order, and a flush', true, save(box), [`iptables -w -t filter -I FORWARD 1 ${toPeer}`, `iptables -w -t filter -I FORWARD 1 ${fromPeer}`, 'conntrack -F']],
    ['blocks the peer again: only flushes', true, save(fromPeer, toPeer, box), ['conntrack -F']],
    ['replaces a block of all UDP', true, save(ours, box), [remove, `iptables -w -t filter -I FORWARD 1 ${toPeer}`, `iptables -w -t filter -I FORWARD 1 ${fromPeer}`, 'conntrack -F']],
    ['unblocks: removes both', false, save(fromPeer, toPeer, box), [`iptables -w -t filter -D FORWARD ${fromPeer}`, `iptables -w -t filter -D FORWARD ${toPeer}`]],
  ])('peer: %s', (_, blocked, filterSave, lines) => {
    expect(commandLines(udpBlockCommands(blocked, filterSave, '198.18.0.31'))).toEqual(lines);
  });

  it('refuses a peer that is not an address', () => {
    expect(() => udpBlockCommands(true, '', '198.18.0.31 -j ACCEPT')).toThrow();
  });
});

describe('BOX-COUNT', () => {
  const ipt = (...args: string[]) => ['iptables -w -t filter', ...args].join(' ');
  const save = (chain: string[] | undefined, forward: string[]) => [
    '*filter', ':FORWARD ACCEPT [0:0]', ...(chain ? [':BOX-COUNT - [0:0]'] : []),
    ...forward.map((r) => `-A FORWARD ${r}`), ...(chain ?? []).map((r) => `-A BOX-COUNT ${r}`), 'COMMIT', '',
  ].join('\n');
  const rule = '-s 10.224.0.0/26 -d 10.224.1.0/26';
  const jump = '-j BOX-COUNT';
  const setup: Array<[string, string, string, string, string[]]> = [
    ['installs chain, rule and jump', save(undefined, ['-i wan0 -j DROP']), '10.224.0.0/26', '10.224.1.0/26',
      [ipt('-N BOX-COUNT'), ipt('-A BOX-COUNT', rule), ipt('-I FORWARD 1', jump)]],
    ['does nothing when all is in place', save([rule], [jump, '-i wan0 -j DROP']), '10.224.0.0/26', '10.224.1.0/26', []],
    ['matches a prefix written with host bits', save([rule], [jump]), '10.224.0.5/26', '10.224.1.0/26', []],
    ['adds a second pair', save([rule], [jump]), '10.224.1.0/26', '10.224.0.0/26', [ipt('-A BOX-COUNT -s 10.224.1.0/26 -d 10.224.0.0/26')]],
    ['counts a host address as /32', save([rule], [jump]), '10.224.0.2', '172.16.2.0/24', [ipt('-A BOX-COUNT -s 10.224.0.2/32 -d 172.16.2.0/24')]],
    ['moves a jump something got above', save([rule], ['-j RAVEN-FORWARD', jump]), '10.224.0.0/26', '10.224.1.0/26', [ipt('-D FORWARD', jump), ipt('-I FORWARD 1', jump)]],
    ['keeps one jump', save([rule], [jump, jump]), '10.224.0.0/26', '10.224.1.0/26', [ipt('-D FORWARD', jump), ipt('-D FORWARD', jump), ipt('-I FORWARD 1', jump)]],
    ['works from an empty save', '', '10.224.0.0/26', '10.224.1.0/26', [ipt('-N BOX-COUNT'), ipt('-A BOX-COUNT', rule), ipt('-I FORWARD 1', jump)]],
  ];
  it.each(setup)('setup %s', (_, filterSave, src, dst, lines) => {
    expect(commandLines(countSetupCommands(filterSave, src, dst))).toEqual(lines);
  });

  it('rejects what is not a prefix', () => {
    expect(() => countSetupCommands('', '10.224.0.0/33', '10.224.1.0/26')).toThrow(BoxControlError);
    expect(() => canonicalPrefix('node-a')).toThrow(BoxControlError);
  });

  const legacy = [
    'Chain BOX-COUNT (1 references)',
    '    pkts      bytes target     prot opt in     out     source               destination         ',
    '      12     1008            all  --  *      *       10.224.0.0/26        10.224.1.0/26       ',
    '       0        0            all  --  *      *       10.224.1.0/26        10.224.0.0/26       ',
    '',
  ].join('\n');
  // iptables-nft 1.8.10 prints protocol numbers with -n and no opt column for IPv4.
  const nft = [
    'Chain BOX-COUNT (1 references)',
    '    pkts      bytes target     prot opt in     out     source               destination         ',
    ' 4294967296 6442450944000            0    *      *       10.224.0.2           172.16.2.0/24       ',
    '       7      588            0    *      *       0.0.0.0/0            10.224.1.0/26        /* a comment 10.0.0.1 */',
    '',
  ].join('\n');
  const listings: Array<[string, string, Array<[string, string, number, number]>]> = [
    ['legacy', legacy, [['10.224.0.0/26', '10.224.1.0/26', 12, 1008], ['10.224.1.0/26', '10.224.0.0/26', 0, 0]]],
    ['nft, large counters, a host source, a comment', nft, [['10.224.0.2/32', '172.16.2.0/24', 4294967296, 6442450944000], ['0.0.0.0/0', '10.224.1.0/26', 7, 588]]],
    ['an empty chain', 'Chain BOX-COUNT (1 references)\n    pkts      bytes target     prot opt in     out     source               destination\n', []],
    ['nothing', '', []],
  ];
  it.each(listings)('parses a %s listing', (_, listing, rows) => {
    expect(parseCountListing(listing).map((c) => [c.source, c.destination, c.packets, c.bytes])).toEqual(rows);
  });

  const lookups: Array<[string, string, string, number | undefined]> = [
    ['the pair', '10.224.0.0/26', '10.224.1.0/26', 1008],
    ['the reverse pair', '10.224.1.0/26', '10.224.0.0/26', 0],
    ['a pair not counted', '10.224.0.0/26', '10.224.2.0/26', undefined],
  ];
  it.each(lookups)('reads the bytes of %s', (_, src, dst, bytes) => {
    expect(countedBytes(legacy, src, dst)).toBe(bytes);
  });

  it('reads a host address as /32', () => {
    expect(countedBytes(nft, '10.224.0.2', '172.16.2.0/24')).toBe(6442450944000);
    expect(countedBytes(nft, '10.224.0.2/32', '172.16.2.0/24')).toBe(6442450944000);
  });
});
