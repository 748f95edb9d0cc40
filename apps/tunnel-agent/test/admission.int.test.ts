import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ANNOTATIONS, HEARTBEAT, LABELS, heartbeatLeaseName, type Gateway } from '@raven/api-types';
import { ApiError, KubeClient, RESOURCES } from '@raven/controller-kit';
import { adminClient, boundKubeconfig, deleteNode, deletePod, kubeletKubeconfig, registerNode, serviceAccountKubeconfig, uniqueName, waitFor } from '@raven/testbed';

/**
 * The tunnel-agent's ValidatingAdmissionPolicy (k8s/base/rbac/tunnel-agent-admission.yaml) in the real apiserver,
 * exercised with the credential a compromised edge node really holds: the agent's ServiceAccount token bound to the
 * agent Pod on that node. It may publish its own WireGuard key and its own peer reports; nothing else.
 */
const cluster = inject('cluster');
const u = uniqueName('vap').split('-').slice(1).join('-');
const node = { a: `vap-a-${u}`, b: `vap-b-${u}` };
const gwName = `vap-gw-${u}`;
const otherGw = `vap-other-${u}`;
const dir = mkdtempSync(join(tmpdir(), 'raven-vap-'));
const key = (letter: string) => `${letter.repeat(42)}A=`;
let admin: KubeClient;
let agentA: KubeClient;
let unbound: KubeClient;
let kubeletA: KubeClient;
const pods: string[] = [];
const alpha = { ...RESOURCES.gateways, version: 'v1alpha1' };

const endpoints = () => [
  { nodeName: node.a, type: 'tunnel', underNAT: true },
  { nodeName: node.b, type: 'tunnel', underNAT: true, config: { publicKey: key('B') } },
];

async function denied(call: Promise<unknown>, words: RegExp): Promise<void> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  expect(err, 'the apiserver accepted it').toBeInstanceOf(ApiError);
  expect((err as ApiError).status, (err as ApiError).message).toBe(403);
  expect((err as ApiError).message).toMatch(words);
}

const indexOf = async (name: string, nodeName: string) =>
  (await admin.get<Gateway>(RESOURCES.gateways, { name })).spec!.endpoints!.findIndex((e) => e.nodeName === nodeName);

beforeAll(async () => {
  admin = await adminClient(cluster);
  for (const n of Object.values(node)) await registerNode(admin, { name: n, internalIP: '10.77.0.1', labels: { [LABELS.gateway]: gwName } });
  for (const [name, eps] of [[gwName, endpoints()], [otherGw, [{ nodeName: node.b, type: 'tunnel' }]]] as const) {
    await admin.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec: { endpoints: eps } });
  }
  await admin.patch(RESOURCES.gateways, { name: gwName, subresource: 'status' }, {
    status: { activeEndpoints: [{ nodeName: node.a, type: 'tunnel', port: 4500, underNAT: true }], nodes: [{ nodeName: node.a, privateIP: '10.77.0.1', subnets: ['10.78.0.0/24'] }] },
  }, 'merge');
  const bound = await boundKubeconfig(admin, cluster, 'raven-tunnel-agent', node.a, dir, u);
  pods.push(bound.pod);
  agentA = await KubeClient.load({ kubeconfig: bound.kubeconfig, userAgent: 'vap-test' });
  unbound = await KubeClient.load({ kubeconfig: await serviceAccountKubeconfig(cluster, 'kube-system', 'raven-tunnel-agent', dir), userAgent: 'vap-test' });
  kubeletA = await KubeClient.load({ kubeconfig: await kubeletKubeconfig(cluster, node.a, dir), userAgent: 'vap-test' });
  // The policy takes effect a moment after it is created: wait until it denies.
  await waitFor('the tunnel-agent admission policy in force', async () => {
    const err = await unbound.patch(RESOURCES.gateways, { name: otherGw }, { metadata: { annotations: { probe: 'x' } } }, 'merge').then(() => undefined, (e: unknown) => e);
    return err instanceof ApiError && err.status === 403;
  }, 30_000, 250);
});

afterAll(async () => {
  for (const name of [gwName, otherGw]) await admin.delete(RESOURCES.gateways, { name }).catch(() => undefined);
  for (const n of Object.values(node)) await deleteNode(admin, n).catch(() => undefined);
  for (const pod of pods) await deletePod(admin, pod);
  for (const n of Object.values(node)) await admin.delete(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: heartbeatLeaseName('tunnel', n) }).catch(() => undefined);
  agentA?.close();
  unbound?.close();
  kubeletA?.close();
  admin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('a tunnel-agent token bound to a Pod on its node', () => {
  it('publishes its own WireGuard public key (JSON patch, as the agent does)', async () => {
    const i = await indexOf(gwName, node.a);
    await agentA.patch(RESOURCES.gateways, { name: gwName }, [
      { op: 'test', path: `/spec/endpoints/${i}/nodeName`, value: node.a },
      { op: 'add', path: `/spec/endpoints/${i}/config`, value: { publicKey: key('A') } },
    ], 'json');
    const i2 = await indexOf(gwName, node.a);
    await agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'replace', path: `/spec/endpoints/${i2}/config/publicKey`, value: key('C') }], 'json');
    expect((await admin.get<Gateway>(RESOURCES.gateways, { name: gwName })).spec!.endpoints!.find((e) => e.nodeName === node.a)!.config).toEqual({ publicKey: key('C') });
  });

  it('records its own NAT type (upstream\'s values), as --nat-traversal does', async () => {
    const i = await indexOf(gwName, node.a);
    await agentA.patch(RESOURCES.gateways, { name: gwName }, [
      { op: 'test', path: `/spec/endpoints/${i}/nodeName`, value: node.a },
      { op: 'add', path: `/spec/endpoints/${i}/natType`, value: 'PortRestricted' },
    ], 'json');
    expect((await admin.get<Gateway>(RESOURCES.gateways, { name: gwName })).spec!.endpoints!.find((e) => e.nodeName === node.a)!.natType).toBe('PortRestricted');
  });

  it('writes its peer reports on the Gateway whose active tunnel endpoint it is', async () => {
    await agentA.patch(RESOURCES.gateways, { name: gwName, subresource: 'status' }, { status: { connections: [{ gateway: otherGw, nodeName: node.b, status: 'Connecting' }] } }, 'merge');
  });

  const attacks: Array<[string, () => Promise<unknown>, RegExp]> = [
    ['replacing another node\'s publicKey', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'replace', path: `/spec/endpoints/${await indexOf(gwName, node.b)}/config/publicKey`, value: key('E') }], 'json'), /may change only config.publicKey and natType of its own tunnel endpoint/],
    ['replacing another node\'s publicKey through v1alpha1', async () => agentA.patch(alpha, { name: gwName }, [{ op: 'replace', path: `/spec/endpoints/${await indexOf(gwName, node.b)}/config/publicKey`, value: key('E') }], 'json'), /may change only config.publicKey/],
    ['adding a config key to its own endpoint', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'add', path: `/spec/endpoints/${await indexOf(gwName, node.a)}/config/AllowedIPs`, value: '10.0.0.0/8' }], 'json'), /may change only config.publicKey/],
    ['a natType that is not one of upstream\'s values', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'add', path: `/spec/endpoints/${await indexOf(gwName, node.a)}/natType`, value: 'OpenInternet' }], 'json'), /may change only config.publicKey and natType/],
    ['another node\'s natType', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'add', path: `/spec/endpoints/${await indexOf(gwName, node.b)}/natType`, value: 'Symmetric' }], 'json'), /may change only config.publicKey/],
    ['moving its own endpoint\'s publicIP', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'add', path: `/spec/endpoints/${await indexOf(gwName, node.a)}/publicIP`, value: '203.0.113.66' }], 'json'), /may change only config.publicKey/],
    ['adding an endpoint', () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'add', path: '/spec/endpoints/-', value: { nodeName: 'intruder', type: 'tunnel', underNAT: true } }], 'json'), /may change only config.publicKey/],
    ['removing an endpoint', async () => agentA.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'remove', path: `/spec/endpoints/${await indexOf(gwName, node.b)}` }], 'json'), /may change only config.publicKey/],
    ['turning the tunnel off', () => agentA.patch(RESOURCES.gateways, { name: gwName }, { spec: { tunnelConfig: { Replicas: 0 } } }, 'merge'), /may change only config.publicKey/],
    ['setting extra-allowed-source-cidrs', () => agentA.patch(RESOURCES.gateways, { name: gwName }, { metadata: { annotations: { [ANNOTATIONS.extraAllowedSourceCIDRs]: '0.0.0.0/1,128.0.0.0/1' } } }, 'merge'), /may not change a Gateway's labels, annotations/],
    ['rewriting status.nodes', () => agentA.patch(RESOURCES.gateways, { name: gwName, subresource: 'status' }, { status: { nodes: [{ nodeName: node.a, privateIP: '10.77.0.1', subnets: ['10.0.0.0/8'] }] } }, 'merge'), /may change only status.connections/],
    ['rewriting status.activeEndpoints', () => agentA.patch(RESOURCES.gateways, { name: gwName, subresource: 'status' }, { status: { activeEndpoints: [{ nodeName: node.a, type: 'tunnel', port: 4500, config: { publicKey: key('E') } }] } }, 'merge'), /may change only status.connections/],
    ['writing peer reports on a Gateway it is not active for', () => agentA.patch(RESOURCES.gateways, { name: otherGw, subresource: 'status' }, { status: { connections: [{ gateway: gwName, nodeName: node.a, status: 'Connected' }] } }, 'merge'), /only of the Gateway whose active tunnel endpoint it is/],
    ['creating a Gateway', () => agentA.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: `vap-new-${u}` }, spec: {} }), /forbidden|may not create/i],
    ['deleting a Gateway', () => agentA.delete(RESOURCES.gateways, { name: otherGw }), /forbidden|may not delete/i],
  ];

  it.each(attacks)('is refused %s', async (_d, attack, words) => {
    const before = await admin.get<Gateway>(RESOURCES.gateways, { name: gwName });
    await denied(attack(), words);
    const after = await admin.get<Gateway>(RESOURCES.gateways, { name: gwName });
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

describe('a tunnel-agent token bound to no Pod', () => {
  it('may not write Gateways at all', async () => {
    await denied(unbound.patch(RESOURCES.gateways, { name: gwName }, [{ op: 'replace', path: `/spec/endpoints/${await indexOf(gwName, node.a)}/config/publicKey`, value: key('F') }], 'json'), /not bound to a Pod on a node/);
  });
});

describe('heartbeat Leases written with a node\'s agent token', () => {
  const ns = HEARTBEAT.namespace;
  const body = (name: string, holderIdentity: string, leaseDurationSeconds: number = HEARTBEAT.durationSeconds, component = 'tunnel') => ({
    apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
    metadata: { name, namespace: ns, labels: { [HEARTBEAT.label]: component } },
    spec: { holderIdentity, leaseDurationSeconds, renewTime: new Date().toISOString().replace('Z', '000Z') },
  });

  it('may write the node\'s own Lease as the contract says', async () => {
    await agentA.create(RESOURCES.leases, body(heartbeatLeaseName('tunnel', node.a), node.a));
  });

  it.each<[string, () => object, RegExp]>([
    ['another node\'s Lease (keeping a dead gateway elected)', () => body(heartbeatLeaseName('tunnel', node.b), node.b), /must be the Lease raven-tunnel-/],
    ['its own Lease naming another holder', () => body(heartbeatLeaseName('tunnel', node.a), node.b), /must name it as holderIdentity/],
    ['a Lease with a name of its choosing for another node', () => body(`raven-tunnel-forged-${u}`, node.b), /must be the Lease raven-tunnel-/],
    ['an hour-long duration', () => body(heartbeatLeaseName('tunnel', node.a), node.a, 3_600), /fixed by the contract at 2 seconds/],
    ['a proxy heartbeat from the tunnel agent', () => body(heartbeatLeaseName('tunnel', node.a), node.a, HEARTBEAT.durationSeconds, 'proxy'), /raven.openyurt.io\/heartbeat=tunnel/],
  ])('is refused %s', async (_d, make, words) => {
    const lease = make() as { metadata: { name: string } };
    const existing = await admin.get<{ metadata: { resourceVersion: string } }>(RESOURCES.leases, { namespace: ns, name: lease.metadata.name }).catch(() => undefined);
    const call = existing
      ? agentA.replace(RESOURCES.leases, { namespace: ns, name: lease.metadata.name }, { ...lease, metadata: { ...lease.metadata, resourceVersion: existing.metadata.resourceVersion } })
      : agentA.create(RESOURCES.leases, lease);
    await denied(call, words);
  });

  it('is refused for a token bound to no Pod', async () => {
    await denied(unbound.create(RESOURCES.leases, body(heartbeatLeaseName('tunnel', node.b), node.b)), /not bound to a Pod on a node/);
  });
});

describe('a node\'s kubelet identity (system:node:<name>)', () => {
  it('may still edit its own Node\'s other labels', async () => {
    await kubeletA.patch(RESOURCES.nodes, { name: node.a }, { metadata: { labels: { 'example.com/rack': 'r1' } } }, 'merge');
  });

  it.each<[string, () => Promise<unknown>, RegExp]>([
    ['moving itself into another Gateway', () => kubeletA.patch(RESOURCES.nodes, { name: node.a }, { metadata: { labels: { [LABELS.gateway]: otherGw } } }, 'merge'), /may not set or change its own raven.openyurt.io\/gateway label/],
    ['leaving its Gateway', () => kubeletA.patch(RESOURCES.nodes, { name: node.a }, { metadata: { labels: { [LABELS.gateway]: null } } }, 'merge'), /may not set or change its own raven.openyurt.io\/gateway label/],
    ['patching a Gateway at all', () => kubeletA.patch(RESOURCES.gateways, { name: gwName }, { spec: { exposeType: 'PublicIP' } }, 'merge'), /forbidden/i],
  ])('is refused %s', async (_d, attack, words) => {
    await denied(attack(), words);
    const n = await admin.get<{ metadata: { labels?: Record<string, string> } }>(RESOURCES.nodes, { name: node.a });
    expect(n.metadata.labels?.[LABELS.gateway]).toBe(gwName);
  });
});
