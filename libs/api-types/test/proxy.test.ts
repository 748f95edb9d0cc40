import { describe, expect, it } from 'vitest';
import {
  activeProxyServerGateway, forbiddenTargetReason, isProxyCandidate, mayHoldProxyClientIdentity, proxyClientRole, proxyServerGateways, proxyServingSans,
  type Gateway,
} from '../src/index.ts';

const gateway = (name: string, spec: Gateway['spec'], status?: Gateway['status']): Gateway => ({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec, status });
const gateways = [
  gateway('cloud', { exposeType: 'PublicIP', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }, { nodeName: 'c2', type: 'proxy', publicIP: '198.18.0.12' }] },
    { activeEndpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }] }),
  gateway('hz', { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'hz-1', type: 'proxy', underNAT: true }, { nodeName: 'hz-2', type: 'proxy', underNAT: true }, { nodeName: 'hz-3', type: 'tunnel', underNAT: true }] },
    { activeEndpoints: [{ nodeName: 'hz-1', type: 'proxy', underNAT: true }, { nodeName: 'hz-3', type: 'tunnel', underNAT: true }] }),
];

describe('the proxy identity policy', () => {
  it.each([
    ['hz-1', 'hz', { serves: 'domain', gateway: 'hz' }, true],
    ['hz-2', 'hz', { serves: 'nothing', standby: true, reason: 'standby: not an elected proxy endpoint of Gateway hz' }, true],
    ['hz-3', 'hz', { serves: 'nothing', standby: false, reason: 'not a proxy endpoint of Gateway hz' }, false],
    // relabel-and-hijack: hz-1 labels itself into another Gateway, where nobody elected it
    ['hz-1', 'qd', { serves: 'nothing', standby: false, reason: 'Gateway qd not found' }, false],
    ['c1', 'cloud', { serves: 'nothing', standby: false, reason: 'Gateway cloud is exposed: its nodes are served by proxy-server' }, false],
    ['lone', undefined, { serves: 'self' }, true],
  ] as const)('proxy-client on %s (label %s): %j', (name, gw, role, identity) => {
    expect(proxyClientRole({ name, gateway: gw }, gateways)).toEqual(role);
    expect(mayHoldProxyClientIdentity({ name, gateway: gw }, gateways)).toBe(identity);
  });

  it('proxy-server runs on the proxy endpoints of exposed Gateways and serves while elected', () => {
    expect(proxyServerGateways('c2', gateways).map((g) => g.metadata.name)).toEqual(['cloud']);
    expect(proxyServerGateways('hz-1', gateways)).toEqual([]);
    expect(activeProxyServerGateway('c1', gateways)?.metadata.name).toBe('cloud');
    expect(activeProxyServerGateway('c2', gateways)).toBeUndefined();
    expect(['c2', 'hz-2', 'hz-3', 'lone'].map((n) => isProxyCandidate(n, gateways))).toEqual([true, true, false, false]);
  });
});

describe('forbiddenTargetReason', () => {
  it.each([
    ['172.16.2.103', undefined], ['10.0.0.1', undefined], ['198.18.0.11', undefined], ['2001:db8::1', undefined], ['fd00::1', undefined],
    ['127.0.0.1', 'a loopback address'], ['127.255.0.9', 'a loopback address'], ['::1', 'a loopback address'], ['::ffff:127.0.0.1', 'a loopback address'],
    ['169.254.169.254', 'a link-local address (cloud metadata services live there)'], ['::ffff:169.254.169.254', 'a link-local address (cloud metadata services live there)'],
    ['fe80::1', 'a link-local address'], ['FE80::abcd', 'a link-local address'],
    ['0.0.0.0', 'an unspecified ("this network") address'], ['::', 'an unspecified address'],
    ['224.0.0.1', 'a multicast address'], ['ff02::1', 'a multicast address'], ['255.255.255.255', 'a reserved or broadcast address'],
    ['not-an-ip', 'not an IP address'],
  ])('%s -> %s', (ip, want) => expect(forbiddenTargetReason(ip)).toBe(want));

  it('allowLoopback (tests) lifts only loopback', () => {
    expect(forbiddenTargetReason('127.0.0.21', { allowLoopback: true })).toBeUndefined();
    expect(forbiddenTargetReason('::1', { allowLoopback: true })).toBeUndefined();
    expect(forbiddenTargetReason('169.254.169.254', { allowLoopback: true })).toMatch(/link-local/);
  });
});

describe('proxyServingSans', () => {
  const cloud = gateway('cloud', { exposeType: 'PublicIP', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }, { nodeName: 'c2', type: 'proxy' }] },
    { activeEndpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }, { nodeName: 'c2', type: 'proxy', publicIP: '203.0.113.9' }] });
  const others: Record<string, string[]> = { victim: ['192.168.10.50', '203.0.113.50'] };
  const sans = (name: string, internalIPs: string[], externalIPs: string[] = []) => proxyServingSans({
    node: { name, internalIPs, externalIPs }, gateways: [cloud], namespace: 'kube-system',
    claimedByOtherNode: (ip) => Object.values(others).some((ips) => ips.includes(ip)),
  });

  it('names the node and the internal Service; carries the admin-written public IP and its own addresses', () => {
    expect(sans('c1', ['192.168.10.11'])).toEqual({
      dnsNames: ['c1', 'x-raven-proxy-internal-svc', 'x-raven-proxy-internal-svc.kube-system', 'x-raven-proxy-internal-svc.kube-system.svc', 'x-raven-proxy-internal-svc.kube-system.svc.cluster.local'],
      ipAddresses: ['198.18.0.11', '192.168.10.11'],
    });
    // A public IP discovered from the node's own annotation (status only) is node-written, and unclaimed here.
    expect(sans('c2', ['192.168.10.12']).ipAddresses).toEqual(['192.168.10.12', '203.0.113.9']);
  });

  it('node-writable addresses another node claims, another endpoint\'s public IP, and never-dialled addresses are left out', () => {
    expect(sans('c2', ['192.168.10.50', '127.0.0.1', '169.254.169.254'], ['203.0.113.50', '198.18.0.11']).ipAddresses).toEqual(['203.0.113.9']);
  });
});
