import { describe, expect, it } from 'vitest';
import type { Cidr } from '@raven/api-types';
import type { VpnPlan } from '../src/planner.ts';
import { pairPsk, parseConnectionNames, plannedConnections, secretsFile } from '../src/vpn/libreswan.ts';

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
