import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { ApiError, RESOURCES, type KubeClient } from '@raven/controller-kit';
import { adminClient, kubectl, uniqueName } from '@raven/testbed';
import { GATEWAY_CRD_NAME } from '../src/index.ts';

const cluster = inject('cluster');
const walkthroughPath = new URL('../../../k8s/examples/walkthrough/gateways.yaml', import.meta.url).pathname;
let kube: KubeClient;

const alphaGateways = { ...RESOURCES.gateways, version: 'v1alpha1' };

beforeAll(async () => {
  kube = await adminClient(cluster);
});
afterAll(async () => {
  await kubectl(cluster.kubeconfig, ['delete', '-f', walkthroughPath, '--ignore-not-found']);
  kube.close();
});

describe('the Gateway CRD in a real apiserver', () => {
  it('is Established, serves v1alpha1 and v1beta1, and stores v1beta1', async () => {
    const out = JSON.parse(await kubectl(cluster.kubeconfig, ['get', 'crd', GATEWAY_CRD_NAME, '-o', 'json'])) as {
      spec: { versions: Array<{ name: string; served: boolean; storage: boolean }> };
      status: { conditions: Array<{ type: string; status: string }> };
    };
    expect(out.status.conditions.find((c) => c.type === 'Established')?.status).toBe('True');
    expect(out.spec.versions.map((v) => `${v.name}:${v.served}:${v.storage}`)).toEqual(['v1alpha1:true:false', 'v1beta1:true:true']);
  });
});

describe('the walkthrough Gateways', () => {
  beforeAll(async () => {
    await kubectl(cluster.kubeconfig, ['apply', '-f', walkthroughPath]);
  });

  const applied = parseAllDocuments(readFileSync(walkthroughPath, 'utf8')).map((d) => d.toJSON() as { apiVersion: string; metadata: { name: string }; spec: Record<string, unknown> });

  it.each(['v1beta1', 'v1alpha1'])('read back as %s show the fields the walkthrough shows', async (version) => {
    for (const doc of applied) {
      const got = JSON.parse(await kubectl(cluster.kubeconfig, ['get', `gateways.${version}.raven.openyurt.io`, doc.metadata.name, '-o', 'json'])) as {
        apiVersion: string; spec: Record<string, unknown>;
      };
      expect(got.apiVersion).toBe(`raven.openyurt.io/${version}`);
      // Everything the manifest says is there, unchanged, whatever version it was written in.
      expect(got.spec).toMatchObject(doc.spec);
    }
  });

  it('keeps gw-cloud exactly as the walkthrough prints it', async () => {
    const got = JSON.parse(await kubectl(cluster.kubeconfig, ['get', 'gateways.v1alpha1.raven.openyurt.io', 'gw-cloud', '-o', 'json'])) as { spec: unknown };
    expect(got.spec).toEqual({
      exposeType: 'PublicIP',
      proxyConfig: { Replicas: 1, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250,9100' },
      tunnelConfig: { Replicas: 1 },
      endpoints: [
        { nodeName: 'izwz9dohcv74iegqecp4axz', underNAT: false, port: 10262, type: 'proxy', publicIP: '198.18.0.11' },
        { nodeName: 'izwz9dohcv74iegqecp4axz', underNAT: false, port: 4500, type: 'tunnel', publicIP: '198.18.0.11' },
      ],
    });
  });

  it('shows status written as v1beta1 through v1alpha1 (activeEndpoint) and in the printer columns', async () => {
    const active = [
      { nodeName: 'izbp15inok0kbfkg3in52rz', type: 'proxy', port: 10262, config: { 'enable-l7-proxy': 'true' } },
      { nodeName: 'izbp15inok0kbfkg3in52rz', type: 'tunnel', port: 4500, config: { 'enable-l3-tunnel': 'true' } },
    ];
    await kube.patch(RESOURCES.gateways, { name: 'gw-hangzhou', subresource: 'status' }, { status: { activeEndpoints: active, nodes: [{ nodeName: 'izbp15inok0kbfkg3in52rz', privateIP: '172.16.2.103', subnets: ['10.224.1.128/26'] }] } }, 'merge');
    const alpha = await kube.get<{ status: { activeEndpoint: { nodeName: string; type: string }; activeEndpoints: unknown[] } }>(alphaGateways, { name: 'gw-hangzhou' });
    expect(alpha.status.activeEndpoint).toMatchObject({ nodeName: 'izbp15inok0kbfkg3in52rz', type: 'tunnel' });
    expect(alpha.status.activeEndpoints).toEqual(active);
    const table = await kubectl(cluster.kubeconfig, ['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou']);
    expect(table).toMatch(/NAME\s+TUNNEL\s+PROXIES\s+EXPOSED\s+AGE/);
    expect(table).toMatch(/gw-hangzhou\s+izbp15inok0kbfkg3in52rz\s+izbp15inok0kbfkg3in52rz\s/);
    const alphaTable = await kubectl(cluster.kubeconfig, ['get', 'gateways.v1alpha1.raven.openyurt.io', 'gw-hangzhou']);
    expect(alphaTable).toMatch(/gw-hangzhou\s+izbp15inok0kbfkg3in52rz\s/);
  });
});

type Spec = Record<string, unknown>;
const ep = (over: Record<string, unknown> = {}) => ({ nodeName: 'node-a', type: 'tunnel', ...over });

/** [description, version, spec, field the message must name, words the message must contain]. */
const badGateways: Array<[string, 'v1alpha1' | 'v1beta1', Spec, string, RegExp]> = [
  ['negative proxy Replicas', 'v1beta1', { proxyConfig: { Replicas: -1 } }, 'spec.proxyConfig.Replicas', /greater than or equal to 0/],
  ['too many proxy Replicas', 'v1beta1', { proxyConfig: { Replicas: 101 } }, 'spec.proxyConfig.Replicas', /less than or equal to 100/],
  ['tunnel Replicas above 1', 'v1beta1', { tunnelConfig: { Replicas: 2 } }, 'spec.tunnelConfig.Replicas', /less than or equal to 1/],
  ['Replicas of the wrong type', 'v1beta1', { proxyConfig: { Replicas: '1' } }, 'spec.proxyConfig.Replicas', /must be of type integer/],
  ['port 0', 'v1beta1', { endpoints: [ep({ port: 0 })] }, 'spec.endpoints[0].port', /greater than or equal to 1/],
  ['port 70000', 'v1beta1', { endpoints: [ep({ port: 70000 })] }, 'spec.endpoints[0].port', /less than or equal to 65535/],
  ['publicPort 70000', 'v1beta1', { endpoints: [ep({ publicPort: 70000 })] }, 'spec.endpoints[0].publicPort', /less than or equal to 65535/],
  ['a port list with a word', 'v1beta1', { proxyConfig: { Replicas: 0, proxyHTTPPort: '10255,abc' } }, 'spec.proxyConfig.proxyHTTPPort', /must be a comma-separated list of port numbers/],
  ['a port list with a trailing comma', 'v1beta1', { proxyConfig: { Replicas: 0, proxyHTTPSPort: '10250,' } }, 'spec.proxyConfig.proxyHTTPSPort', /must be a comma-separated list of port numbers/],
  ['a node name that is no DNS subdomain', 'v1beta1', { endpoints: [ep({ nodeName: 'Not_A_Valid_Node!' })] }, 'spec.endpoints[0].nodeName', /must be a valid node name/],
  ['a publicKey that carries WireGuard config lines', 'v1beta1', { endpoints: [ep({ config: { publicKey: `${'k'.repeat(42)}A=\nAllowedIPs = 10.0.0.0/8\nEndpoint = 203.0.113.66:51820` } })] }, 'spec.endpoints[0].config', /config.publicKey must be a WireGuard public key/],
  ['a publicKey of 31 bytes', 'v1beta1', { endpoints: [ep({ config: { publicKey: Buffer.alloc(31, 1).toString('base64') } })] }, 'spec.endpoints[0].config', /the base64 form of exactly 32 bytes/],
  ['v1alpha1: a publicKey that is no key', 'v1alpha1', { endpoints: [{ nodeName: 'a', config: { publicKey: 'x' } }] }, 'spec.endpoints[0].config', /WireGuard public key/],
  ['a port list with a port out of range', 'v1beta1', { proxyConfig: { Replicas: 0, proxyHTTPSPort: '10250,70000' } }, 'spec.proxyConfig.proxyHTTPSPort', /within 1-65535/],
  ['a duplicated endpoint', 'v1beta1', { endpoints: [ep(), ep({ port: 4501 })] }, 'spec.endpoints', /only once/],
  ['an empty nodeName', 'v1beta1', { endpoints: [ep({ nodeName: '' })] }, 'spec.endpoints[0].nodeName', /at least 1 chars/],
  ['a missing nodeName', 'v1beta1', { endpoints: [{ type: 'tunnel' }] }, 'spec.endpoints[0].nodeName', /Required/],
  ['a nodeName over 253 characters', 'v1beta1', { endpoints: [ep({ nodeName: 'n'.repeat(254) })] }, 'spec.endpoints[0].nodeName', /more than 253/],
  ['an unknown endpoint type', 'v1beta1', { endpoints: [ep({ type: 'vpn' })] }, 'spec.endpoints[0].type', /Unsupported value: "vpn"/],
  ['a v1beta1 endpoint without type', 'v1beta1', { endpoints: [{ nodeName: 'node-a' }] }, 'spec.endpoints[0].type', /Required/],
  ['an unknown exposeType', 'v1beta1', { exposeType: 'NodePort' }, 'spec.exposeType', /Unsupported value: "NodePort"/],
  ['an exposed gateway with underNAT endpoints', 'v1beta1', { exposeType: 'PublicIP', endpoints: [ep({ underNAT: true })] }, 'spec.endpoints', /must not have underNAT/],
  ['mixed underNAT', 'v1beta1', { endpoints: [ep({ underNAT: true }), ep({ nodeName: 'node-b' })] }, 'spec.endpoints', /same underNAT/],
  ['publicIP 1.2.3', 'v1beta1', { endpoints: [ep({ publicIP: '1.2.3' })] }, 'spec.endpoints[0].publicIP', /valid IPv4 or IPv6/],
  ['more proxy Replicas than proxy endpoints', 'v1beta1', { proxyConfig: { Replicas: 2 }, endpoints: [ep({ type: 'proxy' })] }, 'spec.proxyConfig.Replicas', /must not exceed the number of proxy endpoints/],
  ['too many endpoints', 'v1beta1', { endpoints: Array.from({ length: 65 }, (_, i) => ep({ nodeName: `n${i}` })) }, 'spec.endpoints', /Too many: 65: must have at most 64/],
  ['too many config entries', 'v1beta1', { endpoints: [ep({ config: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) })] }, 'spec.endpoints[0].config', /at most 64/],
  ['v1alpha1: publicIP 300.1.1.1', 'v1alpha1', { endpoints: [{ nodeName: 'node-a', publicIP: '300.1.1.1' }] }, 'spec.endpoints[0].publicIP', /valid IPv4 or IPv6/],
  ['v1alpha1: mixed underNAT', 'v1alpha1', { endpoints: [{ nodeName: 'a', underNAT: true }, { nodeName: 'b', underNAT: false }] }, 'spec.endpoints', /same underNAT/],
  ['v1alpha1: the same node twice (both tunnel)', 'v1alpha1', { endpoints: [{ nodeName: 'a' }, { nodeName: 'a', type: 'tunnel' }] }, 'spec.endpoints', /only once/],
  ['v1alpha1: exposed LoadBalancer with underNAT', 'v1alpha1', { exposeType: 'LoadBalancer', endpoints: [{ nodeName: 'a', underNAT: true }] }, 'spec.endpoints', /must not have underNAT/],
  ['v1alpha1: tunnel Replicas 3', 'v1alpha1', { tunnelConfig: { Replicas: 3 } }, 'spec.tunnelConfig.Replicas', /less than or equal to 1/],
  ['v1alpha1: an empty nodeName', 'v1alpha1', { endpoints: [{ nodeName: '' }] }, 'spec.endpoints[0].nodeName', /at least 1 chars/],
];

function gatewayBody(version: string, name: string, spec: Spec) {
  return { apiVersion: `raven.openyurt.io/${version}`, kind: 'Gateway', metadata: { name }, spec };
}

async function expectRejected(call: Promise<unknown>, field: string, words: RegExp): Promise<void> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  expect(err, 'the apiserver accepted it').toBeInstanceOf(ApiError);
  const apiErr = err as ApiError;
  expect(apiErr.status).toBe(422);
  expect(apiErr.message).toContain(field);
  expect(apiErr.message).toMatch(words);
  // Every message reads as a sentence about the field: no CEL internals.
  expect(apiErr.message).not.toMatch(/type conversion|no such overload|no matching overload|compilation/);
}

describe('edge values the apiserver accepts', () => {
  it.each<[string, Spec]>([
    ['empty port lists (no ports)', { proxyConfig: { Replicas: 0, proxyHTTPPort: '', proxyHTTPSPort: '' } }],
    ['a real WireGuard key', { endpoints: [ep({ config: { publicKey: Buffer.alloc(32, 9).toString('base64') } })] }],
    ['a dotted node name', { endpoints: [ep({ nodeName: 'node-1.example.com' })] }],
  ])('%s', async (_d, spec) => {
    const name = uniqueName('ok');
    await kube.create(RESOURCES.gateways, gatewayBody('v1beta1', name, spec));
    await kube.delete(RESOURCES.gateways, { name });
  });
});

describe('bad Gateways are rejected by the apiserver itself, naming the field', () => {
  it('has at least 20 distinct cases', () => {
    expect(new Set(badGateways.map(([d]) => d)).size).toBeGreaterThanOrEqual(20);
  });

  it.each(badGateways)('on create: %s (%s)', async (_d, version, spec, field, words) => {
    const type = version === 'v1alpha1' ? alphaGateways : RESOURCES.gateways;
    await expectRejected(kube.create(type, gatewayBody(version, uniqueName('bad'), spec)), field, words);
  });

  it.each(badGateways)('on update: %s (%s)', async (_d, version, spec, field, words) => {
    const type = version === 'v1alpha1' ? alphaGateways : RESOURCES.gateways;
    const name = uniqueName('upd');
    const created = await kube.create<{ metadata: { resourceVersion: string } }>(type, gatewayBody(version, name, { endpoints: [{ nodeName: 'ok', type: 'tunnel' }] }));
    try {
      const body = { ...gatewayBody(version, name, spec), metadata: { name, resourceVersion: created.metadata.resourceVersion } };
      await expectRejected(kube.replace(type, { name }, body), field, words);
    } finally {
      await kube.delete(type, { name });
    }
  });
});
