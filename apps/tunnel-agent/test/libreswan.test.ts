import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Cidr } from '@raven/api-types';
import { createLogger } from '@raven/controller-kit';
import type { Exec } from '@raven/netlink';
import type { VpnPlan } from '../src/planner.ts';
import type { PeerStatus } from '../src/vpn/driver.ts';
import {
  LibreswanDriver, libreswanPeerStatus, pairPsk, parseConnectionNames, parseTrafficStatus, plannedConnections, secretsFile,
} from '../src/vpn/libreswan.ts';

const plan: VpnPlan = {
  gateway: 'gw-hz', device: 'raven-wg0', listenPort: 4500, mtu: 1436, underNAT: true,
  localSubnets: ['10.224.1.0/26', '10.224.1.128/26', 'fd00::/64'], localPrivateIP: '172.16.2.103',
  peers: [
    { gateway: 'gw-cloud', nodeName: 'c1', publicIP: '198.18.0.11', allowedIPs: ['10.224.0.0/26'] as Cidr[], relays: [], underNAT: false },
    { gateway: 'gw-edge', nodeName: 'e1', allowedIPs: ['10.9.0.0/24'] as Cidr[], relays: [], underNAT: true },
  ],
};

describe('libreswan connections', () => {
  it('connects every local subnet to every remote subnet, named raven-<peer>-<hash of the definition>', () => {
    const conns = plannedConnections(plan, 'gw-hz');
    expect(conns.map((c) => c.peer)).toEqual(['gw-cloud', 'gw-cloud', 'gw-edge', 'gw-edge']);
    for (const c of conns) expect(c.name).toMatch(/^raven-gw-(cloud|edge)-[0-9a-f]{10}$/);
    expect(new Set(conns.map((c) => c.name)).size).toBe(4);
    expect(conns[0]!.args).toEqual([
      '--ikev2', '--psk', '--encrypt', '--tunnel', '--pfs',
      '--host', '172.16.2.103', '--id', '@gw-hz', '--client', '10.224.1.0/26',
      '--to', '--host', '198.18.0.11', '--id', '@gw-cloud', '--client', '10.224.0.0/26',
    ]);
  });

  it('initiates towards public peers and waits for NATed ones (%any)', () => {
    const conns = plannedConnections(plan, 'gw-hz');
    expect(conns.filter((c) => c.peer === 'gw-cloud').every((c) => c.initiate)).toBe(true);
    expect(conns.filter((c) => c.peer === 'gw-edge').every((c) => !c.initiate && c.args.includes('%any'))).toBe(true);
  });

  it('changes the name when the definition changes, so stale connections are recognised', () => {
    const moved = { ...plan, localPrivateIP: '172.16.2.104' };
    const before = new Set(plannedConnections(plan, 'gw-hz').map((c) => c.name));
    expect(plannedConnections(moved, 'gw-hz').some((c) => before.has(c.name))).toBe(false);
  });

  it('writes one line per peer: the pinned pair of identities and that pair\'s own PSK, never the Secret itself', () => {
    const text = secretsFile('gw-hz', plan.peers, 'a "b"');
    expect(text).toBe(`@gw-hz @gw-cloud : PSK "${pairPsk('a "b"', 'gw-hz', 'gw-cloud')}"\n@gw-hz @gw-edge : PSK "${pairPsk('a "b"', 'gw-hz', 'gw-edge')}"\n`);
    expect(text).not.toContain('a "b"');
    expect(text).not.toContain('%any');
  });

  it('derives the same PSK at both ends of a pair and a different one for every other pair', () => {
    expect(pairPsk('s', 'gw-hz', 'gw-cloud')).toBe(pairPsk('s', 'gw-cloud', 'gw-hz'));
    expect(pairPsk('s', 'gw-hz', 'gw-cloud')).not.toBe(pairPsk('s', 'gw-hz', 'gw-edge'));
    expect(pairPsk('s', 'gw-hz', 'gw-cloud')).not.toBe(pairPsk('t', 'gw-hz', 'gw-cloud'));
  });

  it('refuses a Gateway name that could break out of the secrets file', () => {
    expect(() => secretsFile('gw-hz', [{ ...plan.peers[0]!, gateway: 'x : PSK "known"\n@gw-hz @y' }], 's')).toThrow(/not a valid Gateway name/);
  });

  it('parses connection names from whack --status', () => {
    expect([...parseConnectionNames('000 "raven-gw-x-1": 10.0.0.0/24===...\n000 "raven-gw-x-1":   oriented;\n000 "other": ...\n000 Total IPsec connections: loaded 2')]).toEqual(['raven-gw-x-1', 'other']);
  });
});

describe('libreswan traffic status', () => {
  const conns = plannedConnections(plan, 'gw-hz');
  const [cloudA, cloudB] = conns.filter((c) => c.peer === 'gw-cloud').map((c) => c.name);
  const [edgeA] = conns.filter((c) => c.peer === 'gw-edge').map((c) => c.name);

  it.each<[string, string, ReturnType<typeof parseTrafficStatus>]>([
    ['libreswan 4 (006 prefix)', '006 #3: "c1", type=ESP, add_time=1590508783, inBytes=84, outBytes=168, id=\'@gw-cloud\'\n', [{ connection: 'c1', inBytes: 84, outBytes: 168 }]],
    ['libreswan 5 (maxBytes, no prefix)', '#2: "c1", type=ESP, add_time=1790967726, inBytes=46572, outBytes=15037832, maxBytes=2^63B, id=\'@gw-cloud\'', [{ connection: 'c1', inBytes: 46572, outBytes: 15037832 }]],
    ['an instance of a %any connection', '006 #2: "c2"[1] 3.139.75.179, type=ESP, add_time=1617195756, inBytes=0, outBytes=7, id=\'@gw-edge\'', [{ connection: 'c2', remote: '3.139.75.179', inBytes: 0, outBytes: 7 }]],
    ['an opportunistic instance', '006 #2: "private#192.168.122.175/32"[1] ...192.168.122.175, type=ESP, add_time=1509134156, inBytes=636519, outBytes=73886, id=\'CN=x\'', [{ connection: 'private#192.168.122.175/32', remote: '192.168.122.175', inBytes: 636519, outBytes: 73886 }]],
    ['a username and a lease', '#154: "ikev2-cp"[27] 5.149.159.35, username=u, type=ESP, add_time=1755279621, inBytes=9, outBytes=2, maxBytes=2^63B, id=\'CN=vpnclient, O=IKEv2 VPN\', lease=192.168.43.13/32', [{ connection: 'ikev2-cp', remote: '5.149.159.35', inBytes: 9, outBytes: 2 }]],
    ['no Child SA', '', []],
    ['other status lines', '000 "c1": 10.0.0.0/24===10.0.0.1[@a]...%any[@b]===10.1.0.0/24; unrouted; eroute owner: #0\n000 Total IPsec connections: loaded 2, active 0', []],
  ])('parses %s', (_what, text, want) => {
    expect(parseTrafficStatus(text)).toEqual(want);
  });

  it.each<[string, string, PeerStatus[]]>([
    ['sums a peer over its connections and their SAs (a rekey overlaps two)', [
      `006 #3: "${cloudA}", type=ESP, add_time=1, inBytes=100, outBytes=10, id='@gw-cloud'`,
      `006 #4: "${cloudB}", type=ESP, add_time=1, inBytes=20, outBytes=2, id='@gw-cloud'`,
      `006 #5: "${cloudB}", type=ESP, add_time=2, inBytes=3, outBytes=1, id='@gw-cloud'`,
    ].join('\n'), [{ gateway: 'gw-cloud', nodeName: 'c1', rxBytes: 123, txBytes: 13 }]],
    ['keys a NATed peer by gateway and node, with the address its instance came from', `#7: "${edgeA}"[1] 203.0.113.9, type=ESP, add_time=1, inBytes=5, outBytes=6, maxBytes=2^63B, id='@gw-edge'`,
      [{ gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9', rxBytes: 5, txBytes: 6 }]],
    ['ignores connections that are not ours', `006 #1: "foreign-conn", type=ESP, add_time=1, inBytes=5, outBytes=6, id='@x'`, []],
  ])('%s', (_what, text, want) => {
    expect(libreswanPeerStatus(conns, text)).toEqual(want);
  });

  const dir = mkdtempSync(join(tmpdir(), 'raven-ipsec-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  it('reports the peers of the plan from whack, keyed by gateway and node (not by a WireGuard key)', async () => {
    mkdirSync(join(dir, 'ipsec', 'run'), { recursive: true });
    writeFileSync(join(dir, 'ipsec', 'run', 'pluto.ctl'), '');
    const exec: Exec = { run: async (_cmd, args) => ({ stderr: '', stdout: args.includes('--trafficstatus') ? `006 #3: "${cloudA}", type=ESP, add_time=1, inBytes=84, outBytes=84, id='@gw-cloud'\n` : '' }) };
    const driver = new LibreswanDriver({ exec, log: createLogger('t', { level: 'silent' }), stateDir: dir, psk: () => 's' });
    expect(await driver.status(plan)).toEqual([{ gateway: 'gw-cloud', nodeName: 'c1', rxBytes: 84, txBytes: 84 }]);
    expect(plan.peers.map((p) => driver.unconfigured(p))).toEqual([undefined, undefined]);
    expect(driver.unconfigured({ ...plan.peers[0]!, allowedIPs: ['fd01::/64'] as Cidr[] })).toMatch(/IPv4/);
  });
});
