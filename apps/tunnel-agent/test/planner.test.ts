import { describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { planDataPath, vpnBeforeKernel, type PlanInput, type VpnPlan } from '../src/planner.ts';
import { pickCentral, domainOf } from '../src/topology.ts';
import { vtepAddress, vtepMac } from '../src/vxlan.ts';

/** Syntactically valid WireGuard keys (base64 of 32 bytes), one per letter. */
const key = (letter: string) => `${letter.repeat(42)}A=`;
const K = { C: key('C'), H: key('H'), H2: key('J'), Q: key('Q'), X: key('X') };

const gw = (name: string, spec: object, status: object): Gateway =>
  gatewayV1beta1Schema.parse({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec, status });
const active = (nodeName: string, underNAT: boolean, publicIP?: string, publicKey?: string) =>
  ({ nodeName, type: 'tunnel', port: 4500, underNAT, ...(publicIP ? { publicIP } : {}), config: { 'enable-l3-tunnel': 'true', ...(publicKey ? { publicKey } : {}) } });

/** The walkthrough: cloud (public, exposed), hangzhou and qingdao (both behind NAT). */
const walkthrough = [
  gw('gw-cloud', { exposeType: 'PublicIP' }, {
    activeEndpoints: [active('cloud-1', false, '198.18.0.11', K.C)],
    nodes: [{ nodeName: 'cloud-1', privateIP: '192.168.0.195', subnets: ['10.224.0.128/26'] }, { nodeName: 'cloud-2', privateIP: '192.168.0.196', subnets: ['10.224.0.0/26'] }],
  }),
  gw('gw-hangzhou', {}, {
    activeEndpoints: [active('hz-1', true, undefined, K.H)],
    nodes: [{ nodeName: 'hz-1', privateIP: '172.16.2.103', subnets: ['10.224.1.128/26'] }, { nodeName: 'hz-2', privateIP: '172.16.2.104', subnets: ['10.224.1.0/26'] }],
  }),
  gw('gw-qingdao', {}, {
    activeEndpoints: [active('qd-2', true, undefined, K.Q)],
    nodes: [{ nodeName: 'qd-1', privateIP: '172.16.1.89', subnets: ['10.224.2.128/26'] }, { nodeName: 'qd-2', privateIP: '172.16.1.90', subnets: ['10.224.2.0/26'] }],
  }),
];

const input = (nodeName: string, memberOf: string, privateIP: string, over: Partial<PlanInput> = {}): PlanInput => ({
  nodeName, memberOf, gateways: walkthrough, l3Enabled: true, host: { privateIP, underlayDevice: 'eth0', underlayMtu: 1500 },
  forwardNodeIP: false, driver: 'wireguard', keepaliveSeconds: 5, ...over,
});

describe('topology', () => {
  it('picks the public, exposed gateway as central', () => {
    expect(pickCentral(walkthrough.map(domainOf).filter((d) => d !== undefined))?.name).toBe('gw-cloud');
  });

  it('derives VTEP addresses and MACs from private IPs', () => {
    expect(vtepAddress('172.16.2.103')).toBe('240.16.2.103');
    expect(vtepMac('172.16.2.103')).toBe('0e:ee:ac:10:02:67');
  });
});

describe('planDataPath', () => {
  it('gives a non-gateway node vxlan to its gateway, routes by destination to every remote prefix (DNATed ClusterIP traffic included), and the set of remote subnets', () => {
    const plan = planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104'));
    expect(plan.role).toEqual({ kind: 'member', gateway: 'gw-hangzhou', gatewayNode: 'hz-1' });
    expect(plan.links).toEqual([{ name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: '172.16.2.104', dev: 'eth0', learning: false, mtu: 1450, mac: vtepMac('172.16.2.104'), up: true }]);
    expect(plan.fdb).toEqual([{ dev: 'raven0', mac: vtepMac('172.16.2.103'), dst: '172.16.2.103' }]);
    const remote = ['10.224.0.0/26', '10.224.0.128/26', '10.224.2.0/26', '10.224.2.128/26', '172.16.1.90/32', '192.168.0.195/32'];
    expect(plan.routes).toEqual([
      ...remote.map((dst) => ({ table: 9027, dst, via: '240.16.2.103', dev: 'raven0', onlink: true, src: '172.16.2.104' })),
      { table: 9027, dst: '172.16.2.103/32', type: 'throw' },
    ]);
    // No mark: the lookup sees the destination after kube-proxy's DNAT, which a mangle-PREROUTING mark cannot.
    expect(plan.rules).toEqual([{ priority: 100, table: 9027, family: 4 }]);
    expect(plan.iptables.v4.chains.find((c) => c.table === 'mangle' && c.name === 'RAVEN-MARK-CHAIN')?.rules).toEqual([]);
    const markSet = plan.ipsets.find((s) => s.name === 'raven-mark-set');
    expect([...markSet!.members]).toEqual(['10.224.0.0/26', '10.224.0.128/26', '10.224.2.0/26', '10.224.2.128/26', '172.16.1.90/32', '192.168.0.195/32']);
    expect([...plan.ipsets.find((s) => s.name === 'raven-skip-nat-set')!.members]).toEqual(['10.224.1.0/26', '10.224.1.128/26']);
    expect(plan.vpn).toBeUndefined();
  });

  it('gives a NATed gateway one peer, the central gateway, which also carries the other NATed domain', () => {
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103'));
    expect(plan.role).toEqual({ kind: 'gateway', gateway: 'gw-hangzhou', central: false });
    expect(plan.vpn?.peers).toEqual([{
      gateway: 'gw-cloud', nodeName: 'cloud-1', publicKey: K.C, endpoint: '198.18.0.11:4500', publicIP: '198.18.0.11',
      allowedIPs: ['10.224.0.0/26', '10.224.0.128/26', '10.224.2.0/26', '10.224.2.128/26', '172.16.1.90/32', '192.168.0.195/32'],
      keepaliveSeconds: 5, relays: ['gw-qingdao'], underNAT: false,
    }]);
    expect(plan.routes.filter((r) => r.table === 9028).map((r) => r.dst)).toEqual(plan.vpn!.peers[0]!.allowedIPs);
    expect(plan.routes.filter((r) => r.table === 9027)).toEqual([{ table: 9027, dst: '10.224.1.0/26', via: '240.16.2.104', dev: 'raven0', onlink: true }]);
    expect(plan.links.map((l) => l.name)).toEqual(['raven0', 'raven-wg0']);
    expect(plan.vpn?.listenPort).toBe(4500);
    expect(plan.vpn?.mtu).toBe(1420);
  });

  describe('NAT traversal (natPaths)', () => {
    const QD_PREFIXES = ['10.224.2.0/26', '10.224.2.128/26', '172.16.1.90/32'];
    const CLOUD_PREFIXES = ['10.224.0.0/26', '10.224.0.128/26', '192.168.0.195/32'];
    const peers = (mode?: 'punching' | 'direct') =>
      planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', mode ? { natPaths: new Map([['gw-qingdao', { mode, endpoint: '198.18.0.13:4500', via: 'internet' as const }]]) } : {})).vpn!.peers;

    it('punching adds the NATed peer at its observed mapping with a 1 s keepalive and no allowed IPs; traffic stays relayed', () => {
      const [cloud, qingdao] = peers('punching');
      expect(cloud).toMatchObject({ gateway: 'gw-cloud', allowedIPs: [...CLOUD_PREFIXES.slice(0, 2), ...QD_PREFIXES, CLOUD_PREFIXES[2]].sort(), relays: ['gw-qingdao'] });
      expect(qingdao).toEqual({
        gateway: 'gw-qingdao', nodeName: 'qd-2', publicKey: K.Q, endpoint: '198.18.0.13:4500', allowedIPs: [], keepaliveSeconds: 1, relays: [], underNAT: true, natPath: 'punching',
      });
    });

    it('direct moves the peer\'s prefixes off the central gateway onto it, and probes it as its own peer', () => {
      const [cloud, qingdao] = peers('direct');
      expect(cloud).toMatchObject({ gateway: 'gw-cloud', allowedIPs: CLOUD_PREFIXES, relays: [] });
      expect(qingdao).toMatchObject({ gateway: 'gw-qingdao', endpoint: '198.18.0.13:4500', allowedIPs: QD_PREFIXES, keepaliveSeconds: 5, natPath: 'direct' });
      const probes = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { natPaths: new Map([['gw-qingdao', { mode: 'direct', endpoint: '198.18.0.13:4500', via: 'internet' }]]) })).probes;
      expect(probes.map((p) => `${p.gateway}@${p.ip}${p.relayed ? ' relayed' : ''}`)).toEqual(['gw-cloud@192.168.0.195', 'gw-qingdao@172.16.1.90']);
    });

    it('a LAN path at the peer\'s private IP keeps that IP out of the tunnel (WireGuard\'s own packets go there)', () => {
      const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { natPaths: new Map([['gw-qingdao', { mode: 'direct', endpoint: '172.16.1.90:4500', via: 'lan' }]]) }));
      expect(plan.vpn!.peers.find((p) => p.gateway === 'gw-qingdao')).toMatchObject({ endpoint: '172.16.1.90:4500', allowedIPs: ['10.224.2.0/26', '10.224.2.128/26'] });
      expect(plan.remotePrefixes).not.toContain('172.16.1.90/32');
    });

    describe('vpnBeforeKernel: a punched peer with a new endpoint is configured only after the kernel step', () => {
      const plan = (mode?: 'punching' | 'direct', endpoint = '172.16.1.90:4500'): VpnPlan =>
        planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', mode ? { natPaths: new Map([['gw-qingdao', { mode, endpoint, via: 'lan' as const }]]) } : {})).vpn!;
      const shown = (vpn: VpnPlan) => vpn.peers.map((p) => `${p.gateway}:${p.endpoint}:${p.natPath ?? '-'}`);
      it.each([
        { case: 'a new punch is withheld', next: plan('punching'), applied: plan(), early: ['gw-cloud:198.18.0.11:4500:-'] },
        { case: 'a new punch on the first reconcile is withheld', next: plan('punching'), applied: undefined, early: ['gw-cloud:198.18.0.11:4500:-'] },
        { case: 'a punch already applied at that endpoint stays', next: plan('punching'), applied: plan('punching'), early: ['gw-cloud:198.18.0.11:4500:-', 'gw-qingdao:172.16.1.90:4500:punching'] },
        { case: 'a punch that moves keeps its applied endpoint until the kernel step', next: plan('punching', '198.18.0.13:4500'), applied: plan('punching'), early: ['gw-cloud:198.18.0.11:4500:-', 'gw-qingdao:172.16.1.90:4500:punching'] },
        { case: 'a direct path is never withheld', next: plan('direct'), applied: plan('punching'), early: ['gw-cloud:198.18.0.11:4500:-', 'gw-qingdao:172.16.1.90:4500:direct'] },
      ])('$case', ({ next, applied, early }) => {
        const first = vpnBeforeKernel(next, applied);
        expect(shown(first)).toEqual(early);
        // Nothing withheld: the very same plan, so the agent applies once.
        expect(first === next).toBe(shown(first).join() === shown(next).join());
      });
    });

    it('is ignored where nothing is relayed: on the public gateway, and for a non-NATed peer', () => {
      const paths = new Map([['gw-hangzhou', { mode: 'direct' as const, endpoint: '198.18.0.12:4500', via: 'internet' as const }], ['gw-cloud', { mode: 'direct' as const, endpoint: '198.18.0.99:1', via: 'internet' as const }]]);
      const central = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195', { natPaths: paths }));
      expect(central.vpn!.peers.map((p) => `${p.gateway}:${p.endpoint ?? '-'}:${p.natPath ?? '-'}`)).toEqual(['gw-hangzhou:-:-', 'gw-qingdao:-:-']);
      const hz = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { natPaths: paths }));
      expect(hz.vpn!.peers.map((p) => `${p.gateway}:${p.endpoint}`)).toEqual(['gw-cloud:198.18.0.11:4500']);
    });
  });

  it('gives the gateway its probe targets: each routed peer at its private IP, and each domain relayed through one', () => {
    const probes = (nodeName: string, memberOf: string, ip: string) =>
      planDataPath(input(nodeName, memberOf, ip)).probes.map((p) => `${p.gateway}/${p.nodeName}@${p.ip ?? '-'}${p.relayed ? ` via ${p.via.gateway}` : ''}`);
    expect(probes('hz-1', 'gw-hangzhou', '172.16.2.103')).toEqual(['gw-cloud/cloud-1@192.168.0.195', 'gw-qingdao/qd-2@172.16.1.90 via gw-cloud']);
    expect(probes('cloud-1', 'gw-cloud', '192.168.0.195')).toEqual(['gw-hangzhou/hz-1@172.16.2.103', 'gw-qingdao/qd-2@172.16.1.90']);
    expect(probes('hz-2', 'gw-hangzhou', '172.16.2.104')).toEqual([]); // a member probes nothing
  });

  it('makes the central gateway a peer of every gateway and keeps relayed traffic un-NATed', () => {
    const plan = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195'));
    expect(plan.role).toEqual({ kind: 'gateway', gateway: 'gw-cloud', central: true });
    expect(plan.vpn?.peers.map((p) => [p.gateway, p.endpoint, p.keepaliveSeconds, p.allowedIPs])).toEqual([
      ['gw-hangzhou', undefined, undefined, ['10.224.1.0/26', '10.224.1.128/26', '172.16.2.103/32']],
      ['gw-qingdao', undefined, undefined, ['10.224.2.0/26', '10.224.2.128/26', '172.16.1.90/32']],
    ]);
    const skip = [...plan.ipsets.find((s) => s.name === 'raven-skip-nat-set')!.members];
    expect(skip).toEqual(expect.arrayContaining(['10.224.0.0/26', '10.224.1.0/26', '10.224.2.0/26']));
  });

  it('routes node IPs too with --forward-node-ip, but never a peer tunnel address or a local address', () => {
    const withNodes = planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104', { forwardNodeIP: true }));
    const members = [...withNodes.ipsets.find((s) => s.name === 'raven-mark-set')!.members];
    expect(members).toEqual(expect.arrayContaining(['172.16.1.89/32', '172.16.1.90/32', '192.168.0.195/32', '192.168.0.196/32']));
    const clash = [gw('gw-x', { exposeType: 'PublicIP' }, {
      activeEndpoints: [active('x-1', false, '198.18.0.50', K.X)],
      nodes: [{ nodeName: 'x-1', privateIP: '198.18.0.50', subnets: ['10.50.0.0/24'] }, { nodeName: 'x-2', privateIP: '172.16.2.104', subnets: ['10.50.1.0/24'] }],
    }), ...walkthrough];
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways: clash, forwardNodeIP: true }));
    expect(plan.remotePrefixes).not.toContain('198.18.0.50/32');
    expect(plan.remotePrefixes).not.toContain('172.16.2.104/32');
  });

  it('removes everything when L3 is off, the node is in no Gateway, or its Gateway has no active tunnel endpoint', () => {
    expect(planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104', { l3Enabled: false })).role.kind).toBe('none');
    expect(planDataPath(input('hz-2', '', '172.16.2.104', { memberOf: undefined })).role.kind).toBe('none');
    const noActive = walkthrough.map((g) => (g.metadata.name === 'gw-hangzhou' ? { ...g, status: { ...g.status, activeEndpoints: [] } } : g));
    const plan = planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104', { gateways: noActive }));
    expect(plan.role).toEqual({ kind: 'none', reason: 'Gateway gw-hangzhou has no active tunnel endpoint' });
    expect(plan.links).toEqual([]);
    expect(plan.ipsets).toEqual([]);
  });

  it('leaves NAT-to-NAT domains unreachable when no public gateway can relay', () => {
    const natOnly = walkthrough.filter((g) => g.metadata.name !== 'gw-cloud');
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways: natOnly }));
    expect(plan.vpn?.peers).toEqual([]);
    expect(plan.remotePrefixes).toEqual([]);
  });

  it('keeps a warm standby: the candidate has tunnels without routes, and remote gateways peer with it without allowed IPs', () => {
    const withStandby = walkthrough.map((g) => g.metadata.name !== 'gw-hangzhou' ? g : gatewayV1beta1Schema.parse({
      ...g, spec: { endpoints: [{ nodeName: 'hz-1', type: 'tunnel', underNAT: true }, { nodeName: 'hz-2', type: 'tunnel', underNAT: true, config: { publicKey: K.H2 } }] },
    }));
    const standby = planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104', { gateways: withStandby }));
    expect(standby.role.kind).toBe('member');
    expect(standby.links.map((l) => l.name)).toEqual(['raven0', 'raven-wg0']);
    expect(standby.vpn?.peers.map((p) => [p.gateway, p.allowedIPs, p.keepaliveSeconds])).toEqual([['gw-cloud', [], 5]]);
    expect(standby.routes.filter((r) => r.table === 9028)).toEqual([]);
    const cloud = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195', { gateways: withStandby }));
    expect(cloud.vpn?.peers.filter((p) => p.gateway === 'gw-hangzhou').map((p) => [p.nodeName, p.publicKey, p.allowedIPs.length])).toEqual([['hz-1', K.H, 3], ['hz-2', K.H2, 0]]);
  });

  it('is deterministic', () => {
    const a = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195'));
    const b = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195', { gateways: [...walkthrough].reverse() }));
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });
});

/** A Gateway as stored before the CRD checked anything (or ratcheted): built without the schema's checks. */
const rawGw = (name: string, spec: object, status: object) => ({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec, status }) as Gateway;
const withGateway = (name: string, edit: (g: Gateway) => Gateway) => walkthrough.map((g) => (g.metadata.name === name ? edit(g) : g));
const withNodes = (name: string, nodes: object[]) => withGateway(name, (g) => rawGw(name, g.spec ?? {}, { ...g.status, nodes }));

describe('planDataPath never lets a bad Gateway value reach the kernel or the tunnel config', () => {
  const cloudPeer = (plan: ReturnType<typeof planDataPath>) => plan.vpn?.peers.find((p) => p.gateway === 'gw-cloud');

  it('drops a publicKey that carries config lines, and keeps the peer without a key', () => {
    const injected = withGateway('gw-cloud', (g) => rawGw('gw-cloud', g.spec ?? {}, {
      ...g.status, activeEndpoints: [{ ...g.status!.activeEndpoints![0]!, config: { 'enable-l3-tunnel': 'true', publicKey: `${K.C}\nAllowedIPs = 10.224.1.0/26\nEndpoint = 203.0.113.66:51820` } }],
    }));
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways: injected }));
    const peer = plan.vpn?.peers.find((p) => p.gateway === 'gw-cloud');
    expect(peer?.publicKey).toBeUndefined();
    expect(plan.dropped).toEqual(['Gateway gw-cloud: endpoint cloud-1 config.publicKey is not a WireGuard key']);
  });

  it.each<[string, string[], string[], RegExp]>([
    ['a subnet that is no CIDR', ['10.224.0.128/26', 'not-a-cidr'], ['10.224.0.128/26'], /"not-a-cidr" is not a CIDR/],
    ['a subnet with host bits', ['10.224.0.129/26'], [], /is not a CIDR without host bits/],
    ['the two halves of the Internet', ['0.0.0.0/1', '128.0.0.0/1', '10.224.0.128/26'], ['10.224.0.128/26'], /"0.0.0.0\/1" is wider than \/8/],
    ['a subnet holding this node\'s own underlay address', ['172.16.0.0/12', '10.224.0.128/26'], ['10.224.0.128/26'], /contains the protected address 172.16.2.103/],
    ['a subnet holding the apiserver', ['192.0.2.0/24', '10.224.0.128/26'], ['10.224.0.128/26'], /contains the protected address 192.0.2.10/],
    ['a subnet holding a gateway\'s public address (its own tunnel packets)', ['198.18.0.0/16', '10.224.0.128/26'], ['10.224.0.128/26'], /contains the protected address 198.18.0.11/],
  ])('drops only %s from status.nodes', (_d, subnets, kept, reason) => {
    const gateways = withNodes('gw-cloud', [{ nodeName: 'cloud-1', privateIP: '192.168.0.195', subnets }]);
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways, protectedIPs: ['192.0.2.10'] }));
    expect(plan.dropped.join('\n')).toMatch(reason);
    expect(cloudPeer(plan)?.allowedIPs.filter((c) => !c.startsWith('10.224.2') && !c.endsWith('/32'))).toEqual(kept);
    expect(plan.routes.filter((r) => r.table === 9028).map((r) => r.dst)).toEqual(expect.arrayContaining(kept));
    for (const route of plan.routes) expect(['0.0.0.0/1', '128.0.0.0/1', '172.16.0.0/12', '192.0.2.0/24', '198.18.0.0/16']).not.toContain(route.dst);
  });

  it('drops an invalid privateIP and an invalid publicIP, keeping the rest', () => {
    const gateways = withGateway('gw-cloud', (g) => rawGw('gw-cloud', g.spec ?? {}, {
      ...g.status,
      activeEndpoints: [{ ...g.status!.activeEndpoints![0]!, publicIP: '198.18.0.11\nAllowedIPs = 0.0.0.0/0' }],
      nodes: [...g.status!.nodes!, { nodeName: 'cloud-3', privateIP: 'bogus', subnets: ['10.224.0.64/26'] }],
    }));
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways }));
    expect(plan.dropped).toEqual([
      'Gateway gw-cloud: endpoint cloud-1 publicIP "198.18.0.11\nAllowedIPs = 0.0.0.0/0" is not an IP address',
      'Gateway gw-cloud: node cloud-3 privateIP "bogus" is not an IP address',
    ]);
    const peer = plan.vpn!.peers.find((p) => p.gateway === 'gw-cloud')!;
    expect(peer.endpoint).toBeUndefined();
    expect(peer.allowedIPs).toContain('10.224.0.64/26');
  });

  it('leaves an IPv6-first member out of vxlan instead of failing the whole plan', () => {
    const gateways = withNodes('gw-hangzhou', [
      { nodeName: 'hz-1', privateIP: '172.16.2.103', subnets: ['10.224.1.128/26'] },
      { nodeName: 'hz-2', privateIP: '172.16.2.104', subnets: ['10.224.1.0/26'] },
      { nodeName: 'hz-6', privateIP: 'fd00::6', subnets: ['10.224.1.64/26'] },
    ]);
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways }));
    expect(plan.role.kind).toBe('gateway');
    expect(plan.fdb.map((f) => f.dst)).toEqual(['172.16.2.104']);
    expect(plan.dropped).toEqual(['Gateway gw-hangzhou: node hz-6 has no IPv4 private IP (fd00::6), so it is left out of vxlan']);
    const member = planDataPath(input('hz-2', 'gw-hangzhou', '172.16.2.104', { gateways: withNodes('gw-hangzhou', [{ nodeName: 'hz-1', privateIP: 'fd00::1' }, { nodeName: 'hz-2', privateIP: '172.16.2.104' }]) }));
    expect(member.role).toEqual({ kind: 'none', reason: 'the private IP fd00::1 of gateway node hz-1 is not IPv4, which the vxlan underlay needs' });
    expect(planDataPath(input('hz-2', 'gw-hangzhou', 'fd00::2')).role.kind).toBe('none');
  });

  it('gives a VTEP address to one member only when two private IPs map to the same one', () => {
    const gateways = withNodes('gw-hangzhou', [
      { nodeName: 'hz-1', privateIP: '172.16.2.103', subnets: ['10.224.1.128/26'] },
      { nodeName: 'hz-2', privateIP: '172.16.2.104', subnets: ['10.224.1.0/26'] },
      { nodeName: 'hz-3', privateIP: '173.16.2.104', subnets: ['10.224.1.64/26'] },
      { nodeName: 'hz-4', privateIP: '171.16.2.103', subnets: ['10.224.1.192/26'] },
    ]);
    const plan = planDataPath(input('hz-1', 'gw-hangzhou', '172.16.2.103', { gateways }));
    expect(plan.neighbours.map((n) => n.address)).toEqual(['240.16.2.104']);
    expect(new Set(plan.neighbours.map((n) => n.address)).size).toBe(plan.neighbours.length);
    expect(plan.dropped).toEqual([
      'Gateway gw-hangzhou: node hz-3 (173.16.2.104) has the same VTEP address 240.16.2.104 as node hz-2, so it is left out of vxlan',
      'Gateway gw-hangzhou: node hz-4 (171.16.2.103) has the same VTEP address 240.16.2.103 as node hz-1, so it is left out of vxlan',
    ]);
  });

  it('takes standby peers only from endpoints whose nodes are members of the Gateway', () => {
    const gateways = withGateway('gw-hangzhou', (g) => gatewayV1beta1Schema.parse({
      ...g, spec: { endpoints: [
        { nodeName: 'hz-1', type: 'tunnel', underNAT: true },
        { nodeName: 'hz-2', type: 'tunnel', underNAT: true, config: { publicKey: K.H2 } },
        { nodeName: 'intruder', type: 'tunnel', underNAT: true, config: { publicKey: K.X } },
      ] },
    }));
    const cloud = planDataPath(input('cloud-1', 'gw-cloud', '192.168.0.195', { gateways }));
    expect(cloud.vpn?.peers.filter((p) => p.gateway === 'gw-hangzhou').map((p) => p.nodeName)).toEqual(['hz-1', 'hz-2']);
  });
});
