import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  gatewayV1alpha1Schema, gatewayV1beta1Schema, toV1alpha1, toV1beta1, type Gateway, type GatewayV1alpha1,
} from '../src/index.ts';

const walkthrough = parseAllDocuments(readFileSync(new URL('../../../k8s/examples/walkthrough/gateways.yaml', import.meta.url), 'utf8')).map((d) => d.toJSON() as { apiVersion: string });

const meta = { name: 'gw' };

describe('v1alpha1 → v1beta1 follows upstream', () => {
  it('turns a pure v1alpha1 endpoint into tunnel/4500 and defaults Replicas to 1', () => {
    const alpha = gatewayV1alpha1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1alpha1', kind: 'Gateway', metadata: meta,
      spec: { endpoints: [{ nodeName: 'a', underNAT: true, publicIP: '198.18.0.1', config: { k: 'v' } }] },
      status: { activeEndpoint: { nodeName: 'a', underNAT: true } },
    });
    const beta = toV1beta1(alpha);
    expect(beta.spec).toEqual({
      proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 },
      endpoints: [{ nodeName: 'a', underNAT: true, publicIP: '198.18.0.1', config: { k: 'v' }, type: 'tunnel', port: 4500 }],
    });
    expect(beta.status).toEqual({ activeEndpoints: [{ nodeName: 'a', underNAT: true, type: 'tunnel', port: 4500 }] });
  });

  it('keeps v1beta1 fields that a v1alpha1 object carries (the walkthrough form)', () => {
    const alpha = gatewayV1alpha1Schema.parse(walkthrough.find((d) => (d as GatewayV1alpha1).metadata.name === 'gw-cloud'));
    const beta = toV1beta1(alpha);
    expect(beta.spec?.proxyConfig).toEqual({ Replicas: 1, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250,9100' });
    expect(beta.spec?.exposeType).toBe('PublicIP');
    expect(beta.spec?.endpoints?.map((e) => [e.type, e.port])).toEqual([['proxy', 10262], ['tunnel', 4500]]);
  });

  it('prefers activeEndpoints over the legacy activeEndpoint', () => {
    const alpha = gatewayV1alpha1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1alpha1', kind: 'Gateway', metadata: meta,
      status: { activeEndpoint: { nodeName: 'old' }, activeEndpoints: [{ nodeName: 'new', type: 'tunnel' }] },
    });
    expect(toV1beta1(alpha).status?.activeEndpoints).toEqual([{ nodeName: 'new', type: 'tunnel' }]);
  });
});

describe('v1beta1 → v1alpha1', () => {
  it('exposes the active tunnel endpoint as activeEndpoint', () => {
    const beta = gatewayV1beta1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: meta,
      status: { activeEndpoints: [{ nodeName: 'a', type: 'proxy' }, { nodeName: 'b', type: 'tunnel', port: 4500 }] },
    });
    expect(toV1alpha1(beta).status?.activeEndpoint).toEqual({ nodeName: 'b', type: 'tunnel', port: 4500 });
  });

  it('falls back to the first active endpoint when no tunnel is active', () => {
    const beta = gatewayV1beta1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: meta,
      status: { activeEndpoints: [{ nodeName: 'a', type: 'proxy' }] },
    });
    expect(toV1alpha1(beta).status?.activeEndpoint?.nodeName).toBe('a');
  });
});

/** Every optional field in several combinations: the round trip must reproduce each exactly. */
function v1beta1Samples(): Gateway[] {
  const base = { apiVersion: 'raven.openyurt.io/v1beta1' as const, kind: 'Gateway' as const };
  const endpoints = [
    { nodeName: 'a', type: 'proxy' as const },
    { nodeName: 'a', type: 'tunnel' as const, port: 4501, underNAT: false, natType: 'FullCone', publicIP: '2001:db8::1', publicPort: 30000, config: { publicKey: 'k'.repeat(42) + 'A=' } },
    { nodeName: 'b', type: 'tunnel' as const },
  ];
  return [
    { ...base, metadata: { name: 'empty' }, spec: { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 } } },
    { ...base, metadata: { name: 'no-spec', labels: { a: 'b' }, annotations: { x: 'y' } } },
    {
      ...base, metadata: { name: 'full', uid: 'u', resourceVersion: '5', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z' },
      spec: {
        nodeSelector: { matchLabels: { 'raven.openyurt.io/gateway': 'full' }, matchExpressions: [{ key: 'k', operator: 'In', values: ['v'] }] },
        proxyConfig: { Replicas: 2, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250' },
        tunnelConfig: { Replicas: 0 },
        endpoints,
        exposeType: 'LoadBalancer',
      },
      status: {
        nodes: [{ nodeName: 'a', privateIP: '10.0.0.1', subnets: ['10.244.0.0/24', 'fd00::/64'] }, { nodeName: 'b' }],
        activeEndpoints: [endpoints[0]!, endpoints[1]!],
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: '2026-01-01T00:00:00Z', reason: 'Elected', message: 'ok', observedGeneration: 3 }],
        connections: [{ gateway: 'gw-x', nodeName: 'x', status: 'Connected', latencyRTT: { last: '1ms', min: '1ms', average: '1ms', max: '2ms' }, relayedVia: 'gw-cloud' }],
      },
    },
    { ...base, metadata: { name: 'status-only-proxy' }, spec: { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [endpoints[0]!] }, status: { activeEndpoints: [endpoints[0]!], nodes: [] } },
  ];
}

describe('round trip v1beta1 → v1alpha1 → v1beta1', () => {
  it.each(v1beta1Samples().map((g) => [g.metadata.name, g] as const))('loses nothing: %s', (_name, sample) => {
    const parsed = gatewayV1beta1Schema.parse(sample);
    const back = toV1beta1(gatewayV1alpha1Schema.parse(JSON.parse(JSON.stringify(toV1alpha1(parsed)))));
    expect(back).toEqual(JSON.parse(JSON.stringify(parsed)));
  });

  it('parses the walkthrough manifests with both schemas', () => {
    for (const doc of walkthrough) {
      const schema = doc.apiVersion.endsWith('v1alpha1') ? gatewayV1alpha1Schema : gatewayV1beta1Schema;
      expect(schema.safeParse(doc).success).toBe(true);
    }
  });
});
