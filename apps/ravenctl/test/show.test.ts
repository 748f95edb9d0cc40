import { describe, expect, it } from 'vitest';
import { buildShowView, componentRows, connectionRows, endpointLabel, gatewayRows, heartbeatRows, imageVersion, nodeRows, proxyServerNodes, roleOf } from '../src/show.ts';
import { renderShow } from '../src/show-render.ts';
import { table } from '../src/render.ts';
import { NOW, gateway, lease, node, walkthrough } from './fixtures.ts';

describe('gatewayRows', () => {
  it.each([
    {
      what: 'elected and ready',
      gw: gateway('g', { exposeType: 'PublicIP', active: [{ nodeName: 'a', publicIP: '1.1.1.1' }], ready: { reason: 'EndpointsElected' }, degraded: { status: 'False', reason: 'AllRequestedActive' }, members: ['a', 'b'] }),
      want: { exposeType: 'PublicIP', activeEndpoints: ['tunnel/a:4500 public 1.1.1.1'], ready: 'True (EndpointsElected)', degraded: 'False (AllRequestedActive)', message: '', members: 2 },
    },
    {
      what: 'no endpoint available: the Ready message explains',
      gw: gateway('g', { underNAT: true, ready: { status: 'False', reason: 'NoEndpointAvailable', message: 'tunnel: a not ready' } }),
      want: { exposeType: '-', underNAT: false, activeEndpoints: [], ready: 'False (NoEndpointAvailable)', message: 'tunnel: a not ready' },
    },
    {
      what: 'ready but degraded: the Degraded message explains',
      gw: gateway('g', { ready: { reason: 'EndpointsElected' }, degraded: { status: 'True', reason: 'InsufficientEndpoints', message: 'proxy 1/2' } }),
      want: { message: 'proxy 1/2', degraded: 'True (InsufficientEndpoints)' },
    },
    {
      what: 'never reconciled',
      gw: gateway('g'),
      want: { ready: 'Unknown', degraded: 'Unknown', message: 'no status from gateway-pickup yet' },
    },
  ])('$what', ({ gw, want }) => {
    expect(gatewayRows([gw])[0]).toMatchObject(want);
  });

  it('marks NATed domains', () => {
    expect(gatewayRows([gateway('g', { underNAT: true, endpoints: [{ nodeName: 'a' }] })])[0]!.underNAT).toBe(true);
  });
});

describe('endpointLabel', () => {
  it.each([
    [{ type: 'tunnel', nodeName: 'a' }, 'tunnel/a:4500'],
    [{ type: 'proxy', nodeName: 'a' }, 'proxy/a:10262'],
    [{ type: 'tunnel', nodeName: 'a', port: 51820, publicIP: '2.2.2.2', publicPort: 31000 }, 'tunnel/a:51820 public 2.2.2.2:31000'],
  ] as const)('%o -> %s', (e, want) => expect(endpointLabel(e)).toBe(want));
});

describe('roleOf and nodeRows', () => {
  const gw = gateway('g', { endpoints: [{ nodeName: 'a' }, { nodeName: 'b' }, { nodeName: 'a', type: 'proxy' }, { nodeName: 'c', type: 'proxy' }], active: [{ nodeName: 'a' }, { nodeName: 'a', type: 'proxy' }, { nodeName: 'c', type: 'proxy' }] });
  it.each([
    ['a', 'active-tunnel+proxy'], ['b', 'candidate'], ['c', 'active-proxy'], ['d', 'member'],
  ] as const)('%s is %s', (n, role) => expect(roleOf(n, gw)).toBe(role));
  it('a node whose Gateway does not exist is a plain member', () => expect(roleOf('a', undefined)).toBe('member'));

  it('groups by domain, gateways first, unlabelled nodes last', () => {
    const rows = nodeRows([node('z'), node('d', 'g'), node('b', 'g'), node('a', 'g'), node('x', 'f')], [gw]);
    expect(rows.map((r) => `${r.gateway}/${r.name}/${r.role}`)).toEqual(['f/x/member', 'g/a/active-tunnel+proxy', 'g/b/candidate', 'g/d/member', '-/z/member']);
  });
});

describe('connectionRows', () => {
  it('lists every peer of every Gateway with RTT and relay', () => {
    const rows = connectionRows(walkthrough().gateways);
    expect(rows).toHaveLength(6);
    expect(rows.find((r) => r.gateway === 'gw-hangzhou' && r.peerGateway === 'gw-qingdao')).toEqual({
      gateway: 'gw-hangzhou', node: 'hz-1', peerGateway: 'gw-qingdao', peerNode: 'qd-1', status: 'Connected', endpoint: '-', rtt: '1.2ms (avg 1.1ms)', relayedVia: 'gw-cloud', message: 'relayed: symmetric NAT on both sides',
    });
  });
  it('shows errors with their message', () => {
    const gw = gateway('g', { active: [{ nodeName: 'a' }], connections: [{ gateway: 'p', nodeName: 'pn', status: 'Error', statusMessage: 'no reply for 5s' }] });
    expect(connectionRows([gw])[0]).toMatchObject({ node: 'a', status: 'Error', rtt: '-', message: 'no reply for 5s' });
  });
});

describe('heartbeatRows', () => {
  it.each([
    { l: lease('tunnel', 'a', 0.44), want: { ageSeconds: 0.4, fresh: true } },
    { l: lease('tunnel', 'a', 2), want: { ageSeconds: 2, fresh: true } },
    { l: lease('tunnel', 'a', 30), want: { ageSeconds: 30, fresh: false } },
    { l: lease('proxy', 'a', 1, { renewTime: undefined }), want: { ageSeconds: null, fresh: false } },
    { l: lease('proxy', 'a', -5), want: { ageSeconds: 0, fresh: true } },
  ])('$l.renewTime -> $want', ({ l, want }) => {
    expect(heartbeatRows([l], NOW)[0]).toMatchObject(want);
  });
});

describe('versions', () => {
  it.each([
    ['ghcr.io/raven-ts/tunnel-agent:0.1.0', '0.1.0'],
    ['registry:5000/raven/tunnel-agent:dev', 'dev'],
    ['registry:5000/raven/tunnel-agent', 'latest'],
    ['raven@sha256:0123456789abcdef0123456789', 'sha256:0123456789ab'],
  ])('%s -> %s', (image, want) => expect(imageVersion(image)).toBe(want));

  it('takes Pods first, then Leases of processes without a Pod, and the pickup leader', () => {
    const pods = [
      { name: 'raven-tunnel-agent-x', namespace: 'kube-system', component: 'tunnel-agent', nodeName: 'a', phase: 'Running', images: ['ghcr.io/raven-ts/tunnel-agent:0.1.0'] },
      { name: 'raven-proxy-server-y', namespace: 'kube-system', component: 'proxy-server', nodeName: 'a', phase: 'Running', images: ['x:1'], versionLabel: '0.2.0' },
    ];
    const leases = [lease('tunnel', 'a', 0.1), lease('tunnel', 'b', 10), lease('proxy', 'a', 0.1), lease('proxy', 'c', 0.1), lease('proxy', 'd', 0.1)];
    const servers = proxyServerNodes([gateway('cloud', { exposeType: 'PublicIP', endpoints: [{ nodeName: 'a', type: 'proxy' }, { nodeName: 'd', type: 'proxy' }] }), gateway('edge', { endpoints: [{ nodeName: 'c', type: 'proxy' }] })]);
    const rows = componentRows(pods, leases, { namespace: 'kube-system', name: 'raven-gateway-pickup', holder: 'p1', durationSeconds: 15, renewTime: NOW - 1000 }, NOW, servers);
    expect(rows.map((r) => [r.component, r.instance, r.node, r.version, r.status])).toEqual([
      ['gateway-pickup', 'leader p1', '-', 'unknown', 'leading'],
      ['proxy-client', 'lease/raven-proxy-c', 'c', 'unknown', 'heartbeating'],
      ['proxy-server', 'pod/raven-proxy-server-y', 'a', '0.2.0', 'Running'],
      ['proxy-server', 'lease/raven-proxy-d', 'd', 'unknown', 'heartbeating'],
      ['tunnel-agent', 'pod/raven-tunnel-agent-x', 'a', '0.1.0', 'Running'],
      ['tunnel-agent', 'lease/raven-tunnel-b', 'b', 'unknown', 'heartbeat stale'],
    ]);
  });
});

describe('rendering', () => {
  it('aligns columns and neutralises control characters in names', () => {
    expect(table(['a', 'bb'], [['x\u001b[31m', 'y'], ['long-value', 'z\nq']])).toBe('A           BB\nx?[31m      y\nlong-value  z?q\n');
  });

  it('renders every section of the walkthrough', () => {
    const text = renderShow(buildShowView(walkthrough()));
    for (const heading of ['GATEWAYS', 'NODES', 'CONNECTIONS', 'HEARTBEATS', 'COMPONENTS']) expect(text).toContain(`${heading}\n`);
    expect(text).toMatch(/gw-cloud\s+PublicIP\s+no\s+tunnel\/cloud-1:4500 public 47\.0\.0\.1, proxy\/cloud-1:10262 public 47\.0\.0\.1\s+True \(EndpointsElected\)/);
    expect(text).toMatch(/gw-hangzhou\s+hz-1\s+gw-qingdao\s+qd-1\s+Connected\s+-\s+1\.2ms \(avg 1\.1ms\)\s+gw-cloud/);
  });
});
