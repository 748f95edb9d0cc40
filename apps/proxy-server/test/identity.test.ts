import { describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway, type NodeView } from '@raven/api-types';
import { StaticClusterView } from '../src/cluster-view.ts';
import { servedGateway, servingSpec } from '../src/identity.ts';

const node = (name: string, internalIPs: string[], externalIPs: string[] = []): NodeView => ({
  metadata: { name }, gateway: 'cloud', internalIPs, externalIPs, podCIDRs: [], ready: 'True', calico: false,
});
const gw = (name: string, exposeType: string | undefined, listed: string[], elected: string[]): Gateway => gatewayV1beta1Schema.parse({
  apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name },
  spec: { exposeType, proxyConfig: { Replicas: 1 }, endpoints: listed.map((nodeName) => ({ nodeName, type: 'proxy', ...(nodeName === 'srv' ? { publicIP: '198.18.0.5' } : {}) })) },
  status: { activeEndpoints: elected.map((nodeName) => ({ nodeName, type: 'proxy' })) },
});
const gateways = [gw('cloud', 'PublicIP', ['srv', 'standby'], ['srv']), gw('edge', undefined, ['cli'], ['cli'])];
const view = new StaticClusterView([node('srv', ['10.0.0.5', '10.0.0.9'], ['203.0.113.5']), node('twin', ['10.0.0.9']), node('standby', ['10.0.0.6']), node('cli', ['10.1.0.2'])], gateways);

describe('servingSpec', () => {
  it.each<[string, string, { dnsNames: string[]; ipAddresses: string[] } | undefined]>([
    ['no Node yet: no request', 'ghost', undefined],
    ['a node that is no proxy endpoint of an exposed Gateway: no request (the approver would deny it)', 'twin', undefined],
    ['a proxy endpoint of a non-exposed Gateway only: no request', 'cli', undefined],
    ['its name, the internal Service names, its public IP and the addresses no other node claims', 'srv', {
      dnsNames: ['srv', 'x-raven-proxy-internal-svc', 'x-raven-proxy-internal-svc.kube-system', 'x-raven-proxy-internal-svc.kube-system.svc', 'x-raven-proxy-internal-svc.kube-system.svc.cluster.local'],
      ipAddresses: ['198.18.0.5', '10.0.0.5', '203.0.113.5'],
    }],
    ['a listed standby asks, so that it can take over at once', 'standby', { dnsNames: ['standby', 'x-raven-proxy-internal-svc', 'x-raven-proxy-internal-svc.kube-system', 'x-raven-proxy-internal-svc.kube-system.svc', 'x-raven-proxy-internal-svc.kube-system.svc.cluster.local'], ipAddresses: ['10.0.0.6'] }],
  ])('%s', (_what, nodeName, sans) => {
    const spec = servingSpec(nodeName, view, 'kube-system');
    expect(spec).toEqual(sans && { commonName: `system:node:${nodeName}`, organizations: ['system:nodes'], ...sans });
  });
});

describe('servedGateway', () => {
  it.each<[string, string, boolean, string | undefined]>([
    ['the elected proxy endpoint of an exposed Gateway', 'srv', false, 'cloud'],
    ['the same while stopping', 'srv', true, undefined],
    ['a listed standby', 'standby', false, undefined],
    ['the elected endpoint of a non-exposed Gateway (a proxy-client node)', 'cli', false, undefined],
  ])('%s', (_what, nodeName, stopping, want) => {
    expect(servedGateway(nodeName, gateways, stopping)?.metadata.name).toBe(want);
  });
});
