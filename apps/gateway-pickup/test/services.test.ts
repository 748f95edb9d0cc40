import { describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway, type NodeView } from '@raven/api-types';
import { tunnelNodesFile } from '../src/controllers/dns.ts';
import { internalServiceInputs, planInternalService } from '../src/controllers/internal-service.ts';
import { planPublicServices, publicServiceInputs, publicServiceName } from '../src/controllers/public-service.ts';

const node = (name: string, internalIPs: string[]): NodeView => ({ metadata: { name }, internalIPs, externalIPs: [], podCIDRs: [], ready: 'True', calico: false });
const nodes = new Map([node('a', ['10.0.0.1']), node('b', ['fd00::2']), node('c', ['10.0.0.3']), node('d', [])].map((n) => [n.metadata.name, n]));
const nodeByName = (n: string) => nodes.get(n);

const gateway = (name: string, spec: object, active: Array<{ nodeName: string; type: 'proxy' | 'tunnel'; port?: number }> = []): Gateway =>
  gatewayV1beta1Schema.parse({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name, uid: `uid-${name}` }, spec, status: { activeEndpoints: active } });

describe('planInternalService', () => {
  const exposed = (name: string, http: string | undefined, https: string | undefined, active: string[]) =>
    gateway(name, { exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: http, proxyHTTPSPort: https } }, active.map((nodeName) => ({ nodeName, type: 'proxy' })));

  it.each<[string, { l7: boolean; gateways: Gateway[] }, { ports?: string[]; slices: Array<[string, string, string[]]>; conflicts: number[] }]>([
    ['L7 off: no Service', { l7: false, gateways: [exposed('g', '80', '443', ['a'])] }, { slices: [], conflicts: [] }],
    ['no proxy port: no Service', { l7: true, gateways: [exposed('g', undefined, undefined, ['a'])] }, { slices: [], conflicts: [] }],
    ['a non-exposed Gateway contributes nothing', { l7: true, gateways: [gateway('g', { proxyConfig: { Replicas: 1, proxyHTTPPort: '80' } }, [{ nodeName: 'a', type: 'proxy' }])] }, { slices: [], conflicts: [] }],
    ['ports of two Gateways once each, HTTP before HTTPS, sorted', { l7: true, gateways: [exposed('g1', '8080,80', '443', ['a']), exposed('g2', '80', '9443', ['c'])] },
      { ports: ['http-80:80>10264', 'http-8080:8080>10264', 'https-443:443>10263', 'https-9443:9443>10263'], slices: [['x-raven-proxy-internal-svc-ipv4', 'IPv4', ['10.0.0.1/a', '10.0.0.3/c']]], conflicts: [] }],
    ['a port listed as both is HTTPS, and reported', { l7: true, gateways: [exposed('g', '80,443', '443', ['a'])] },
      { ports: ['http-80:80>10264', 'https-443:443>10263'], slices: [['x-raven-proxy-internal-svc-ipv4', 'IPv4', ['10.0.0.1/a']]], conflicts: [443] }],
    ['an IPv6 backend gets its own slice; a node without address none', { l7: true, gateways: [exposed('g', '80', undefined, ['a', 'b', 'd'])] },
      { ports: ['http-80:80>10264'], slices: [['x-raven-proxy-internal-svc-ipv4', 'IPv4', ['10.0.0.1/a']], ['x-raven-proxy-internal-svc-ipv6', 'IPv6', ['fd00::2/b']]], conflicts: [] }],
    ['no active proxy: an empty IPv4 slice', { l7: true, gateways: [exposed('g', '80', undefined, [])] },
      { ports: ['http-80:80>10264'], slices: [['x-raven-proxy-internal-svc-ipv4', 'IPv4', []]], conflicts: [] }],
    ['a malformed list stored before the CRD rule contributes nothing', { l7: true, gateways: [exposed('g', '80', undefined, ['a']), { ...exposed('h', undefined, undefined, ['c']), spec: { exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: 'x,y' } } } as Gateway] },
      { ports: ['http-80:80>10264'], slices: [['x-raven-proxy-internal-svc-ipv4', 'IPv4', ['10.0.0.1/a', '10.0.0.3/c']]], conflicts: [] }],
  ])('%s', (_what, input, want) => {
    const plan = planInternalService({ ...input, namespace: 'kube-system', nodeByName });
    expect(plan.service?.spec.ports.map((p) => `${p.name}:${p.port}>${p.targetPort}`)).toEqual(want.ports);
    expect(plan.slices.map((s) => [s.metadata.name, s.addressType, s.endpoints.map((e) => `${e.addresses[0]}/${e.nodeName}`)])).toEqual(want.slices);
    expect(plan.conflicts).toEqual(want.conflicts);
  });

  it('builds the Service and slices as the API takes them', () => {
    const plan = planInternalService({ l7: true, namespace: 'kube-system', gateways: [exposed('g', '80', undefined, ['a'])], nodeByName });
    expect(plan.service).toEqual({
      apiVersion: 'v1', kind: 'Service',
      metadata: { name: 'x-raven-proxy-internal-svc', namespace: 'kube-system', labels: { 'app.kubernetes.io/managed-by': 'raven-ts' } },
      spec: { type: 'ClusterIP', ports: [{ name: 'http-80', port: 80, targetPort: 10264, protocol: 'TCP' }] },
    });
    expect(plan.slices[0]).toEqual({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: {
        name: 'x-raven-proxy-internal-svc-ipv4', namespace: 'kube-system',
        labels: { ...plan.service!.metadata.labels, 'kubernetes.io/service-name': 'x-raven-proxy-internal-svc', 'endpointslice.kubernetes.io/managed-by': 'raven-gateway-pickup.openyurt.io' },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.1'], conditions: { ready: true }, nodeName: 'a' }],
      ports: [{ name: 'http-80', port: 10264, protocol: 'TCP' }],
    });
  });
});

describe('planPublicServices', () => {
  const lb = (active: Array<{ nodeName: string; type: 'proxy' | 'tunnel'; port?: number }>, exposeType = 'LoadBalancer') => gateway('gw', { exposeType, proxyConfig: { Replicas: 1 } }, active);

  it.each<[string, Gateway | undefined, string[]]>([
    ['no Gateway', undefined, []],
    ['a PublicIP Gateway', lb([{ nodeName: 'a', type: 'tunnel' }], 'PublicIP'), []],
    ['one per active endpoint: UDP for the tunnel, TCP for the proxy, default ports', lb([{ nodeName: 'a', type: 'tunnel' }, { nodeName: 'b', type: 'proxy' }]),
      ['tunnel a UDP 4500 IPv4 10.0.0.1', 'proxy b TCP 10262 IPv6 fd00::2']],
    ['a node without address: an empty IPv4 slice', lb([{ nodeName: 'd', type: 'tunnel', port: 4501 }]), ['tunnel d UDP 4501 IPv4 -']],
  ])('%s', (_what, gw, want) => {
    const plans = planPublicServices({ gateway: gw, namespace: 'kube-system', nodeByName });
    expect(plans.map(({ endpoint: e, service: s, slice }) => [e.type, e.nodeName, s.spec.ports[0]!.protocol, s.spec.ports[0]!.port, slice.addressType, slice.endpoints[0]?.addresses[0] ?? '-'].join(' '))).toEqual(want);
    for (const { endpoint, service, slice } of plans) {
      expect(service.metadata.name).toBe(publicServiceName('gw', endpoint));
      expect(service.spec).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local' });
      expect(service.metadata.ownerReferences).toEqual([{ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', name: 'gw', uid: 'uid-gw', blockOwnerDeletion: false }]);
      expect(service.metadata.labels).toMatchObject({ 'raven.openyurt.io/gateway': 'gw', 'raven.openyurt.io/endpoints-name': endpoint.nodeName });
      expect(slice.metadata).toMatchObject({ name: service.metadata.name, ownerReferences: service.metadata.ownerReferences, labels: { ...service.metadata.labels, 'kubernetes.io/service-name': service.metadata.name } });
      expect(slice.ports).toEqual([{ name: endpoint.type, port: service.spec.ports[0]!.port, protocol: service.spec.ports[0]!.protocol }]);
    }
  });

  it.each<[string, string]>([['gw', 'a'], ['g'.repeat(60), 'n'.repeat(253)], ['gw.with.dots', 'node_x']])('names a Service validly (%s)', (gw, nodeName) => {
    for (const type of ['tunnel', 'proxy'] as const) expect(publicServiceName(gw, { nodeName, type })).toMatch(/^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$/);
  });
});

describe('tunnelNodesFile', () => {
  it.each<[string, NodeView[], string | undefined, string]>([
    ['no node', [], undefined, ''],
    ['each node at its first InternalIP, sorted, no trailing newline', [node('b', ['10.0.0.2', '10.9.9.9']), node('a', ['10.0.0.1'])], undefined, '10.0.0.1\ta\n10.0.0.2\tb'],
    ['a node without address is left out', [node('a', ['10.0.0.1']), node('d', [])], undefined, '10.0.0.1\ta'],
    ['with the proxy ClusterIP every node resolves to it', [node('b', ['10.0.0.2']), node('a', []), node('c', ['10.0.0.3'])], '10.96.0.10', '10.96.0.10\ta\n10.96.0.10\tb\n10.96.0.10\tc'],
  ])('%s', (_what, list, clusterIP, want) => {
    expect(tunnelNodesFile(list, clusterIP)).toBe(want);
  });
});

describe('which Gateway updates the Service controllers reconcile', () => {
  type Active = Array<{ nodeName: string; type: 'proxy' | 'tunnel'; port?: number }>;
  const gw = (spec: object, active: Active = [], conditions: object[] = []) => {
    const g = gateway('g', spec, active);
    return { ...g, status: { ...g.status, conditions } } as Gateway;
  };
  const ready = [{ type: 'Ready', status: 'True', reason: 'x', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' }];
  const exposedSpec = { exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: '80' } };
  const lbSpec = { exposeType: 'LoadBalancer', proxyConfig: { Replicas: 1 } };
  const natSpec = { proxyConfig: { Replicas: 1, proxyHTTPPort: '80' } };

  it.each<[string, Gateway, Gateway, { internal: boolean; public: boolean }]>([
    ['a status write of a Gateway that is not exposed', gw(natSpec), gw(natSpec, [{ nodeName: 'a', type: 'proxy' }, { nodeName: 'a', type: 'tunnel' }], ready), { internal: false, public: false }],
    ['new conditions only, exposed', gw(exposedSpec, [{ nodeName: 'a', type: 'proxy' }]), gw(exposedSpec, [{ nodeName: 'a', type: 'proxy' }], ready), { internal: false, public: false }],
    ['an exposed Gateway elects another proxy', gw(exposedSpec, [{ nodeName: 'a', type: 'proxy' }]), gw(exposedSpec, [{ nodeName: 'c', type: 'proxy' }]), { internal: true, public: false }],
    ['an exposed Gateway elects another tunnel only', gw(exposedSpec, [{ nodeName: 'a', type: 'tunnel' }]), gw(exposedSpec, [{ nodeName: 'c', type: 'tunnel' }]), { internal: false, public: false }],
    ['proxy ports change', gw(exposedSpec), gw({ ...exposedSpec, proxyConfig: { Replicas: 1, proxyHTTPPort: '80,8080' } }), { internal: true, public: false }],
    ['a Gateway becomes exposed', gw(natSpec), gw(exposedSpec), { internal: true, public: false }],
    ['a Gateway becomes a LoadBalancer', gw(natSpec, [{ nodeName: 'a', type: 'tunnel' }]), gw({ ...lbSpec, proxyConfig: natSpec.proxyConfig }, [{ nodeName: 'a', type: 'tunnel' }]), { internal: true, public: true }],
    ['a LoadBalancer Gateway elects another tunnel', gw(lbSpec, [{ nodeName: 'a', type: 'tunnel' }]), gw(lbSpec, [{ nodeName: 'b', type: 'tunnel' }]), { internal: false, public: true }],
    ['a LoadBalancer endpoint changes port', gw(lbSpec, [{ nodeName: 'a', type: 'tunnel' }]), gw(lbSpec, [{ nodeName: 'a', type: 'tunnel', port: 4501 }]), { internal: false, public: true }],
    ['a LoadBalancer Gateway gets new conditions only', gw(lbSpec, [{ nodeName: 'a', type: 'tunnel' }]), gw(lbSpec, [{ nodeName: 'a', type: 'tunnel' }], ready), { internal: false, public: false }],
  ])('%s', (_what, before, after, want) => {
    expect({ internal: internalServiceInputs(before) !== internalServiceInputs(after), public: publicServiceInputs(before) !== publicServiceInputs(after) }).toEqual(want);
  });
});
