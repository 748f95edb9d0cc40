import { describe, expect, it } from 'vitest';
import type { Gateway, NodeView } from '@raven/api-types';
import { DialRefused, planClient, resolveDial } from '../src/plan.ts';

const gateway = (name: string, spec: Gateway['spec'], status?: Gateway['status']): Gateway => ({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec, status });
const cloud = gateway('gw-cloud', {
  exposeType: 'PublicIP', proxyConfig: { Replicas: 2, proxyHTTPPort: '9445', proxyHTTPSPort: '9100' }, tunnelConfig: { Replicas: 1 },
  endpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }, { nodeName: 'c2', type: 'proxy', publicIP: '198.18.0.12', port: 20262 }, { nodeName: 'c3', type: 'proxy' }],
}, { activeEndpoints: [{ nodeName: 'c1', type: 'proxy', publicIP: '198.18.0.11' }, { nodeName: 'c2', type: 'proxy', publicIP: '198.18.0.12', port: 20262 }, { nodeName: 'c3', type: 'proxy' }] });
const hz = gateway('gw-hz', { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: 'hz-1', type: 'proxy', underNAT: true }, { nodeName: 'hz-2', type: 'proxy', underNAT: true }] },
  { nodes: [{ nodeName: 'hz-1', privateIP: '172.16.2.103' }, { nodeName: 'hz-2', privateIP: '172.16.2.104' }], activeEndpoints: [{ nodeName: 'hz-1', type: 'proxy', underNAT: true }] });
const node = (name: string, gw: string | undefined, ip: string): NodeView => ({ metadata: { name }, gateway: gw, internalIPs: [ip], externalIPs: [], podCIDRs: [], ready: 'True', calico: false });

describe('planClient', () => {
  it('the elected endpoint of an edge Gateway serves its members and joins every active server of every exposed Gateway', () => {
    const plan = planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [cloud, hz], []);
    expect(plan).toMatchObject({ active: true, candidate: true });
    expect([...plan.members]).toEqual([['hz-1', '172.16.2.103'], ['hz-2', '172.16.2.104']]);
    // c3 has no public IP: nobody can reach it from the edge.
    expect(plan.servers).toEqual([{ address: '198.18.0.11:10262', node: 'c1' }, { address: '198.18.0.12:20262', node: 'c2' }]);
    expect([...plan.ports].sort((a, b) => a - b)).toEqual([9100, 9445, 10250, 10255]);
  });

  it('a standby endpoint and cloud nodes stay idle; a node in no Gateway serves itself; static servers are added', () => {
    expect(planClient('hz-2', node('hz-2', 'gw-hz', '172.16.2.104'), [cloud, hz], [])).toMatchObject({ active: false, candidate: true, reason: expect.stringMatching(/standby/) });
    expect(planClient('c1', node('c1', 'gw-cloud', '192.168.0.1'), [cloud, hz], [])).toMatchObject({ active: false, reason: expect.stringMatching(/exposed/) });
    const lone = planClient('lone', node('lone', undefined, '10.0.0.9'), [cloud], ['konnectivity:8091']);
    expect(lone).toMatchObject({ active: true, candidate: false });
    expect([...lone.members]).toEqual([['lone', '10.0.0.9']]);
    expect(lone.servers.map((s) => s.address)).toEqual(['198.18.0.11:10262', '198.18.0.12:20262', 'konnectivity:8091']);
    expect(planClient('ghost', undefined, [cloud], []).active).toBe(false);
    expect(planClient('x', node('x', 'gw-missing', '10.0.0.1'), [cloud], []).active).toBe(false);
  });
});

describe('resolveDial', () => {
  const plan = planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [cloud, hz], []);
  const guard = { node: 'hz-1', ports: [10267], allowLoopback: false };
  const resolve = (p: typeof plan, host: string, port: number) => resolveDial(p, host, port, guard);
  it('dials members by name or InternalIP on proxy ports only', () => {
    expect(resolve(plan, 'hz-2', 10250)).toEqual({ ip: '172.16.2.104', node: 'hz-2' });
    expect(resolve(plan, '172.16.2.103', 9445)).toEqual({ ip: '172.16.2.103', node: 'hz-1' });
    expect(() => resolve(plan, 'hz-2', 22)).toThrow(DialRefused);
    expect(() => resolve(plan, '172.16.1.89', 10250)).toThrow(/not a node of this proxy-client's domain/);
    expect(() => resolve(plan, '127.0.0.1', 10250)).toThrow(DialRefused);
    expect(() => resolve(plan, 'qd-1', 10250)).toThrow(DialRefused);
  });

  it('SSRF: a member whose Node claims a loopback, metadata or unspecified address is never dialled; nor is the client\'s own listener', () => {
    const evil = (ip: string) => gateway('gw-hz', hz.spec, { ...hz.status, nodes: [{ nodeName: 'hz-1', privateIP: '172.16.2.103' }, { nodeName: 'hz-2', privateIP: ip }] });
    for (const [ip, why] of [['127.0.0.1', /loopback/], ['169.254.169.254', /link-local/], ['0.0.0.0', /unspecified/], ['::ffff:127.0.0.1', /loopback/], ['fe80::1', /link-local/], ['::1', /loopback/]] as const) {
      const p = planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [cloud, evil(ip)], []);
      expect(() => resolve(p, 'hz-2', 10250), ip).toThrow(why);
    }
    const loopbackTests = planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [cloud, evil('127.0.0.22')], []);
    expect(resolveDial(loopbackTests, 'hz-2', 10250, { ...guard, allowLoopback: true })).toEqual({ ip: '127.0.0.22', node: 'hz-2' });
    expect(() => resolveDial(planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [cloud, evil('169.254.169.254')], []), 'hz-2', 10250, { ...guard, allowLoopback: true })).toThrow(/link-local/);
    const selfPort = gateway('gw-cloud', { ...cloud.spec!, proxyConfig: { Replicas: 2, proxyHTTPPort: '10267' } }, cloud.status);
    const p = planClient('hz-1', node('hz-1', 'gw-hz', '172.16.2.103'), [selfPort, hz], []);
    expect(() => resolve(p, 'hz-1', 10267)).toThrow(/own listener/);
    expect(resolve(p, 'hz-2', 10267)).toEqual({ ip: '172.16.2.104', node: 'hz-2' });
  });
});
