import { describe, expect, it } from 'vitest';
import { agentDiagnoseSchema, type Cidr } from '@raven/api-types';
import { HealthServer } from '@raven/controller-kit';
import type { PeerReport } from '../src/connections.ts';
import { buildDiagnoseReport, diffSamples, type ApplyOutcome, type DiagnoseInput, type DriftEvent } from '../src/diagnose.ts';
import { EMPTY_PLAN, type DataPathPlan, type PeerPlan } from '../src/planner.ts';

const NOW = Date.parse('2026-12-07T12:00:00Z');
const MIN = 60_000;
const host = { privateIP: '192.168.0.10', underlayDevice: 'eth0', underlayMtu: 1450 };

function gatewayPlan(): DataPathPlan {
  const plan = EMPTY_PLAN({ kind: 'gateway', gateway: 'gw-cloud', central: true });
  plan.links = [{ name: 'raven0', kind: 'vxlan', vni: 200, port: 4472, local: host.privateIP, dev: 'eth0', learning: false, mtu: 1400, mac: '02:00:00:00:00:01', up: true } as DataPathPlan['links'][number]];
  plan.routes = [{ table: 9028, dst: '10.9.0.0/24', dev: 'raven-wg0' }, { table: 9028, dst: '10.10.0.0/24', dev: 'raven-wg0' }];
  plan.remotePrefixes = ['10.9.0.0/24', '10.10.0.0/24'];
  plan.dropped = ['gateway gw-x: endpoint publicIP "<script>" is not an IP address'];
  plan.vpn = { gateway: 'gw-cloud', device: 'raven-wg0', listenPort: 4500, mtu: 1370, underNAT: false, localSubnets: [], localPrivateIP: host.privateIP, peers: [] };
  return plan;
}

const edge: PeerPlan = { gateway: 'gw-edge', nodeName: 'e1', allowedIPs: ['10.9.0.0/24'] as Cidr[], relays: [], underNAT: true, endpoint: '203.0.113.9:4500' };
const qd: PeerPlan = { gateway: 'gw-qd', nodeName: 'qd-1', allowedIPs: ['10.10.0.0/24'] as Cidr[], relays: [], underNAT: true };
const peerReports: PeerReport[] = [
  {
    target: { gateway: 'gw-edge', nodeName: 'e1', ip: '172.16.0.5', via: edge, relayed: false },
    health: { reachable: true, lastRttMs: 1.23456 },
    tunnel: { gateway: 'gw-edge', nodeName: 'e1', latestHandshake: new Date(NOW - 95_000), rxBytes: 1000, txBytes: 2000 },
    connection: { gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9:4500', status: 'Connected' },
  },
  {
    target: { gateway: 'gw-qd', nodeName: 'qd-1', via: qd, relayed: false },
    health: { reachable: false, lastError: 'no reply to the last 3 probes' },
    connection: { gateway: 'gw-qd', nodeName: 'qd-1', status: 'Error' },
  },
];

const outcome = (name: ApplyOutcome['name'], extra: Partial<ApplyOutcome> = {}): ApplyOutcome => ({ name, at: NOW - MIN, verified: true, summary: { added: 0, removed: 0, changed: 0 }, ...extra });
const drift = (subsystem: DriftEvent['subsystem'], agoMs: number, added: string[] = []): DriftEvent => ({ subsystem, at: NOW - agoMs, summary: { added: added.length, removed: 0, changed: 0 }, samples: { added, removed: [] } });

function input(extra: Partial<DiagnoseInput> = {}): DiagnoseInput {
  return { nodeName: 'c1', now: NOW, driver: 'wireguard', l3Enabled: true, ready: true, plan: gatewayPlan(), planAt: NOW - MIN, host, outcomes: [], drift: [], ...extra };
}

describe('buildDiagnoseReport', () => {
  it.each<{ name: string; input: DiagnoseInput; check: (r: ReturnType<typeof buildDiagnoseReport>) => void }>([
    {
      name: 'summarises the plan, MTUs and L3 enablement',
      input: input(),
      check: (r) => {
        expect(r.plan).toMatchObject({ role: { kind: 'gateway', gateway: 'gw-cloud', central: true }, remotePrefixes: 2, routes: 2, links: 1, peers: 0 });
        expect(r.mtu).toEqual({ underlayDevice: 'eth0', underlay: 1450, vxlan: 1400, tunnel: 1370 });
        expect(r).toMatchObject({ node: 'c1', driver: 'wireguard', l3Enabled: true, ready: true, driftWindowSeconds: 3600, subsystems: [], peers: [] });
      },
    },
    {
      name: 'a member has no tunnel MTU and no peers',
      input: input({ plan: { ...EMPTY_PLAN({ kind: 'member', gateway: 'gw-cloud', gatewayNode: 'c1' }), links: gatewayPlan().links } }),
      check: (r) => {
        expect(r.mtu).toEqual({ underlayDevice: 'eth0', underlay: 1450, vxlan: 1400 });
        expect(r.plan?.role).toEqual({ kind: 'member', gateway: 'gw-cloud', gatewayNode: 'c1' });
      },
    },
    {
      name: 'before the first reconcile: no plan, no MTU, the error',
      input: input({ plan: undefined, host: undefined, ready: false, lastError: 'Node c1 has no InternalIP yet' }),
      check: (r) => {
        expect(r.plan).toBeUndefined();
        expect(r.mtu).toBeUndefined();
        expect(r).toMatchObject({ ready: false, lastError: 'Node c1 has no InternalIP yet' });
      },
    },
    {
      name: 'counts drift repairs within the window only, and shows the last one',
      input: input({
        outcomes: [outcome('routes', { lastChange: { at: NOW - 2 * MIN, summary: { added: 1, removed: 0, changed: 0 } } }), outcome('rules')],
        drift: [drift('routes', 2 * 3_600_000, ['old']), drift('routes', 30 * MIN, ['10.9.0.0/24 table 9028']), drift('routes', 2 * MIN, ['10.10.0.0/24 table 9028'])],
      }),
      check: (r) => {
        expect(r.subsystems.map((s) => s.name)).toEqual(['routes', 'rules']);
        expect(r.subsystems[0]).toMatchObject({ driftRepairs: 2, lastChange: { added: 1 }, lastDrift: { added: 1, addedSample: ['10.10.0.0/24 table 9028'] } });
        expect(r.subsystems[1]).toMatchObject({ driftRepairs: 0 });
        expect(r.subsystems[1]!.lastDrift).toBeUndefined();
      },
    },
    {
      name: 'a subsystem whose apply failed carries its error',
      input: input({ outcomes: [outcome('iptables4', { error: 'iptables-restore: line 3 failed' })] }),
      check: (r) => expect(r.subsystems).toEqual([expect.objectContaining({ name: 'iptables4', error: 'iptables-restore: line 3 failed' })]),
    },
    {
      name: 'peers with handshake ages, RTT, and why a tunnel is missing',
      input: input({ peers: { at: NOW - 3000, reports: peerReports, unconfigured: (r) => (r.target.gateway === 'gw-qd' ? 'the peer has not published its public key' : undefined) } }),
      check: (r) => {
        expect(r.peers).toEqual([
          { gateway: 'gw-edge', nodeName: 'e1', endpoint: '203.0.113.9:4500', reachable: true, rttMs: 1.235, handshakeAgeSeconds: 95, rxBytes: 1000, txBytes: 2000 },
          { gateway: 'gw-qd', nodeName: 'qd-1', reachable: false, unconfigured: 'the peer has not published its public key', lastError: 'no reply to the last 3 probes' },
        ]);
        expect(r.peersAt).toBe('2026-12-07T11:59:57.000Z');
      },
    },
    {
      name: 'the PSK by its fingerprint and source, with the last read error',
      input: input({ psk: { source: 'file', fingerprint: '0123456789abcdef', readError: 'ENOENT '.repeat(100) } }),
      check: (r) => {
        expect(r.psk).toMatchObject({ source: 'file', fingerprint: '0123456789abcdef' });
        expect(r.psk!.readError!.length).toBeLessThanOrEqual(300);
      },
    },
    {
      name: 'long untrusted strings are clipped',
      input: input({ lastError: 'x'.repeat(5000) }),
      check: (r) => expect(r.lastError!.length).toBeLessThanOrEqual(300),
    },
  ])('$name', ({ input: i, check }) => {
    const r = buildDiagnoseReport(i);
    expect(agentDiagnoseSchema.parse(JSON.parse(JSON.stringify(r)))).toEqual(r);
    check(r);
  });
});

describe('diffSamples', () => {
  it.each<[string, unknown, ReturnType<typeof diffSamples>]>([
    ['a route missing and a foreign one', { add: [{ table: 9027, dst: '10.9.0.0/24', via: '10.0.0.2' }], remove: [{ table: 9027, dst: '10.8.0.0/24' }], change: [] }, { added: ['10.9.0.0/24 table 9027 via 10.0.0.2'], removed: ['10.8.0.0/24 table 9027'] }],
    ['a changed rule names the wanted one by its key', { add: [], remove: [], change: [{ desired: { key: 'from all fwmark 0x40 lookup 9027' }, actual: {} }] }, { added: ['from all fwmark 0x40 lookup 9027'], removed: [] }],
    ['an fdb entry', { add: [{ dev: 'raven0', mac: '00:00:00:00:00:00', dst: '10.0.0.3' }], remove: [], change: [] }, { added: ['10.0.0.3 dev raven0 mac 00:00:00:00:00:00'], removed: [] }],
    ['not a keyed diff', { script: '-A RAVEN' }, undefined],
  ])('%s', (_name, diff, want) => {
    expect(diffSamples(diff)).toEqual(want);
  });

  it('keeps at most 8 of each', () => {
    const many = Array.from({ length: 50 }, (_, i) => ({ dst: `10.0.${i}.0/24`, table: 9027 }));
    expect(diffSamples({ add: many, remove: many, change: [] })!.added).toHaveLength(8);
  });
});

describe('the diagnose endpoint on the health port', () => {
  it('serves the report as JSON, escaped, read-only', async () => {
    const health = new HealthServer('raven_test');
    let calls = 0;
    health.addJsonEndpoint('/debug/diagnose', () => {
      calls++;
      return buildDiagnoseReport(input({ lastError: '</script><img src=x onerror=alert(1)> & \u2028' }));
    });
    const port = await health.listen(0, '127.0.0.1');
    try {
      const res = await fetch(`http://127.0.0.1:${port}/debug/diagnose?x=<b>`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      const text = await res.text();
      expect(text).not.toMatch(/[<>&\u2028]/);
      expect(agentDiagnoseSchema.parse(JSON.parse(text)).lastError).toBe('</script><img src=x onerror=alert(1)> & \u2028');
      for (const method of ['POST', 'PUT', 'DELETE', 'PATCH']) {
        const r = await fetch(`http://127.0.0.1:${port}/debug/diagnose`, { method, body: method === 'DELETE' ? undefined : '{}' });
        expect(r.status).toBe(405);
        expect(r.headers.get('allow')).toBe('GET, HEAD');
      }
      expect(calls).toBe(1);
      expect((await fetch(`http://127.0.0.1:${port}/debug/other`)).status).toBe(404);
    } finally {
      await health.close();
    }
  });

  it('refuses to shadow the probes and metrics', () => {
    expect(() => new HealthServer('raven_test').addJsonEndpoint('/metrics', () => ({}))).toThrow(/cannot serve JSON/);
  });
});
