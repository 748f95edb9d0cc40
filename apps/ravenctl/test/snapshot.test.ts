import { describe, expect, it } from 'vitest';
import { toIssuedCertificate, toLeaseView, toNodeSnapshot, toPodView } from '../src/snapshot.ts';

describe('parsing API objects', () => {
  it('a heartbeat Lease: holder clock from renewTime, apiserver clock from the managedFields entry owning renewTime', () => {
    const view = toLeaseView({
      metadata: {
        name: 'raven-tunnel-a', namespace: 'raven-heartbeats', labels: { 'raven.openyurt.io/heartbeat': 'tunnel' },
        managedFields: [
          { manager: 'kubectl-label', time: '2026-12-07T01:00:00Z', fieldsV1: { 'f:metadata': { 'f:labels': {} } } },
          { manager: 'raven-tunnel-agent', time: '2026-12-07T02:00:03Z', fieldsV1: { 'f:spec': { 'f:holderIdentity': {}, 'f:renewTime': {} } } },
        ],
      },
      spec: { holderIdentity: 'a', leaseDurationSeconds: 2, renewTime: '2026-12-07T02:00:03.250000Z' },
    });
    expect(view).toEqual({
      namespace: 'raven-heartbeats', name: 'raven-tunnel-a', component: 'tunnel', holder: 'a', durationSeconds: 2,
      renewTime: Date.parse('2026-12-07T02:00:03.250Z'), serverWriteTime: Date.parse('2026-12-07T02:00:03Z'),
    });
  });

  it('a Lease that was never renewed', () => {
    expect(toLeaseView({ metadata: { name: 'l', namespace: 'n' }, spec: { holderIdentity: null, renewTime: null } })).toMatchObject({ holder: undefined, renewTime: undefined, serverWriteTime: undefined });
  });

  it('rejects objects that are not what they claim', () => {
    expect(() => toLeaseView({ metadata: { name: 5 } })).toThrow();
    expect(() => toNodeSnapshot({ metadata: {} })).toThrow();
  });

  it('a Node: addresses and Ready', () => {
    expect(toNodeSnapshot({
      metadata: { name: 'n', labels: { a: 'b' } },
      status: { addresses: [{ type: 'InternalIP', address: '10.0.0.1' }, { type: 'ExternalIP', address: '1.2.3.4' }], conditions: [{ type: 'Ready', status: 'False' }] },
    })).toEqual({ name: 'n', labels: { a: 'b' }, annotations: {}, internalIP: '10.0.0.1', externalIP: '1.2.3.4', ready: 'False', podCIDRs: [] });
    expect(toNodeSnapshot({ metadata: { name: 'n' } }).ready).toBe('Unknown');
    expect(toNodeSnapshot({ metadata: { name: 'n' }, spec: { podCIDR: '10.244.0.0/24' } }).podCIDRs).toEqual(['10.244.0.0/24']);
    expect(toNodeSnapshot({ metadata: { name: 'n' }, spec: { podCIDR: '10.244.0.0/24', podCIDRs: ['10.244.0.0/24', 'fd00::/64'] } }).podCIDRs).toEqual(['10.244.0.0/24', 'fd00::/64']);
  });

  it('a Pod: component label, images, version label', () => {
    expect(toPodView({ metadata: { name: 'p', namespace: 'kube-system', labels: { 'app.kubernetes.io/component': 'proxy-client' } }, spec: { nodeName: 'n', containers: [{ image: 'x:1' }] }, status: { phase: 'Running' } }))
      .toEqual({ name: 'p', namespace: 'kube-system', component: 'proxy-client', nodeName: 'n', phase: 'Running', images: ['x:1'], versionLabel: undefined });
  });

  describe('CSRs of the proxy processes', () => {
    const validity = () => ({ notBefore: 1, notAfter: 2 });
    const csr = (name: string, status: object = { certificate: Buffer.from('PEM').toString('base64') }) => ({ metadata: { name }, status });
    it.each([
      ['raven-proxy-client-edge-1-x7k2p', ['edge-1', 'edge'], { component: 'proxy-client', nodeName: 'edge-1', notAfter: 2 }],
      ['raven-proxy-server-cloud-a-b-q', ['cloud-a', 'cloud-a-b'], { component: 'proxy-server', nodeName: 'cloud-a-b' }],
      ['raven-proxy-server-gone-q', [], { nodeName: 'gone' }],
    ] as const)('%s on nodes %o', (name, nodes, want) => {
      expect(toIssuedCertificate(csr(name), nodes, validity)).toMatchObject(want);
    });
    it('ignores other CSRs and pending ones', () => {
      expect(toIssuedCertificate(csr('node-csr-abc'), [], validity)).toBeUndefined();
      expect(toIssuedCertificate(csr('raven-proxy-client-a-x', {}), ['a'], validity)).toBeUndefined();
    });
    it('reports denied ones and certificates that do not parse', () => {
      expect(toIssuedCertificate(csr('raven-proxy-client-a-x', { conditions: [{ type: 'Denied', message: 'not bound' }] }), ['a'], validity)).toMatchObject({ refused: 'Denied: not bound' });
      expect(toIssuedCertificate(csr('raven-proxy-client-a-x'), ['a'], () => { throw new Error('bad'); })).toMatchObject({ refused: 'issued certificate does not parse' });
    });
  });
});
