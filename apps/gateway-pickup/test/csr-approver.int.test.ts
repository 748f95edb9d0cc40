import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { Registry } from 'prom-client';
import { LABELS, SYSTEM_NAMESPACE, proxyInternalServiceNames } from '@raven/api-types';
import { KubeClient, RESOURCES, createLogger, type Controller } from '@raven/controller-kit';
import { createCsr } from '@raven/pki';
import { adminClient, deleteNode, registerNode, serviceAccountKubeconfig, uniqueName, waitFor, writeKubeconfig } from '@raven/testbed';
import { createCaches, type Caches } from '../src/caches.ts';
import { csrApproverController, recordDecision, type CsrView } from '../src/controllers/csr-approver.ts';

/**
 * The csrapprover controller in-process, authenticated as gateway-pickup's ServiceAccount (its RBAC: gateway-pickup.yaml
 * plus gateway-pickup-csr.yaml), deciding CSRs filed by the proxy ServiceAccounts with Pod-bound tokens, as proxy
 * DaemonSet pods file them, and by others.
 */
const cluster = inject('cluster');
const ns = SYSTEM_NAMESPACE;
const u = uniqueName('csr').split('-').slice(1).join('-');
const node = { srv: `csr-srv-${u}`, cloud2: `csr-cloud2-${u}`, edge: `csr-edge-${u}`, edge2: `csr-edge2-${u}`, lone: `csr-lone-${u}` };
const gw = { cloud: `csr-cloud-${u}`, edge: `csr-edgegw-${u}` };
const dir = mkdtempSync(join(tmpdir(), 'raven-csr-approver-'));
let admin: KubeClient;
let pickupKube: KubeClient;
let caches: Caches;
let controller: Controller;
const requesters = new Map<string, KubeClient>();
const pods: string[] = [];

async function requester(serviceAccount: string, nodeName: string | undefined): Promise<KubeClient> {
  const key = `${serviceAccount}/${nodeName ?? 'unbound'}`;
  let client = requesters.get(key);
  if (client) return client;
  let kubeconfig: string;
  if (!nodeName) {
    kubeconfig = await serviceAccountKubeconfig(cluster, ns, serviceAccount, dir);
  } else {
    const pod = `${serviceAccount}-${nodeName}`.slice(0, 63);
    const created = await admin.create<{ metadata: { uid: string } }>(RESOURCES.pods, {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns },
      spec: { nodeName, serviceAccountName: serviceAccount, containers: [{ name: 'main', image: 'raven/proxy' }] },
    });
    pods.push(pod);
    const review = await admin.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${serviceAccount}/token`, {
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod, uid: created.metadata.uid } } },
    });
    kubeconfig = writeKubeconfig(join(dir, `${pod}.kubeconfig`), cluster.server, cluster.caPem, { token: review.status.token });
  }
  client = await KubeClient.load({ kubeconfig, userAgent: 'csr-approver-test' });
  requesters.set(key, client);
  return client;
}

interface Request {
  as: KubeClient;
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  signer: 'kubernetes.io/kubelet-serving' | 'kubernetes.io/kube-apiserver-client';
  usages: string[];
}

async function file(r: Request): Promise<string> {
  const { csrPem } = await createCsr({ commonName: r.commonName, organizations: r.organizations, dnsNames: r.dnsNames, ipAddresses: r.ipAddresses });
  const created = await r.as.create<{ metadata: { name: string } }>(RESOURCES.csrs, {
    apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { generateName: `test-${u}-` },
    spec: { request: Buffer.from(csrPem).toString('base64'), signerName: r.signer, usages: r.usages },
  });
  return created.metadata.name;
}

type Condition = { type: string; reason?: string; message?: string };
async function decision(name: string): Promise<Condition> {
  return waitFor(`a decision on ${name}`, async () => {
    const csr = await admin.get<{ status?: { conditions?: Condition[] } }>(RESOURCES.csrs, { name });
    return csr.status?.conditions?.find((c) => c.type === 'Approved' || c.type === 'Denied');
  }, 10_000, 50);
}

const serving = ['digital signature', 'server auth'];
const client = ['digital signature', 'client auth'];

beforeAll(async () => {
  admin = await adminClient(cluster);
  await registerNode(admin, { name: node.srv, internalIP: '10.77.0.1', externalIP: '203.0.113.7', labels: { [LABELS.gateway]: gw.cloud } });
  await registerNode(admin, { name: node.cloud2, internalIP: '10.77.0.2', labels: { [LABELS.gateway]: gw.cloud } });
  await registerNode(admin, { name: node.edge, internalIP: '172.16.77.1', labels: { [LABELS.gateway]: gw.edge } });
  await registerNode(admin, { name: node.edge2, internalIP: '172.16.77.2', labels: { [LABELS.gateway]: gw.edge } });
  await registerNode(admin, { name: node.lone, internalIP: '10.88.0.1' });
  const create = (name: string, spec: object) => admin.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  await create(gw.cloud, { exposeType: 'PublicIP', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.srv, type: 'proxy', publicIP: '198.18.77.1' }] });
  await create(gw.edge, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.edge, type: 'proxy', underNAT: true }] });

  pickupKube = await KubeClient.load({ kubeconfig: await serviceAccountKubeconfig(cluster, ns, 'raven-gateway-pickup', dir), userAgent: 'raven-gateway-pickup' });
  const log = createLogger('gateway-pickup', { level: 'warn' });
  const registry = new Registry();
  caches = await createCaches(pickupKube, log, registry, ns);
  for (const informer of caches.all) informer.start();
  await Promise.all(caches.all.map((i) => i.waitForSync()));
  await waitFor('the test gateways in the cache', async () => !!caches.gateways.get(gw.edge) && !!caches.nodes.get(node.lone), 5_000, 20);
  controller = csrApproverController({ kube: pickupKube, caches, log, registry, namespace: ns, resyncMs: 60_000 });
  controller.start();
}, 60_000);

afterAll(async () => {
  await controller?.stop();
  await Promise.all(caches?.all.map((i) => i.stop()) ?? []);
  for (const c of requesters.values()) c.close();
  pickupKube?.close();
  for (const pod of pods) await admin.delete(RESOURCES.pods, { namespace: ns, name: pod }).catch(() => undefined);
  for (const name of Object.values(gw)) await admin.delete(RESOURCES.gateways, { name }).catch(() => undefined);
  for (const name of Object.values(node)) await deleteNode(admin, name);
  admin?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('csrapprover', () => {
  it('approves a proxy-server serving certificate whose SANs all belong to its node, requested from a pod on that node', async () => {
    const as = await requester('raven-proxy-server', node.srv);
    const name = await file({
      as, signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: `system:node:${node.srv}`, organizations: ['system:nodes'],
      dnsNames: [node.srv, ...proxyInternalServiceNames(ns)], ipAddresses: ['10.77.0.1', '203.0.113.7', '198.18.77.1'],
    });
    expect(await decision(name)).toMatchObject({ type: 'Approved', reason: 'RavenProxyServer' });
  });

  it('approves proxy-client identities for an edge Gateway\'s elected node and for a node in no Gateway', async () => {
    for (const n of [node.edge, node.lone]) {
      const name = await file({ as: await requester('raven-proxy-client', n), signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: `raven:proxy-client:${n}` });
      expect(await decision(name), n).toMatchObject({ type: 'Approved', reason: 'RavenProxyClient' });
    }
  });

  it.each([
    ['a SAN of someone else', { who: 'raven-proxy-server', on: 'srv', signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: 'system:node:SRV', organizations: ['system:nodes'], dnsNames: ['SRV', 'kubernetes.default.svc'] }, 'ForeignSANs'],
    ['another node\'s name', { who: 'raven-proxy-server', on: 'srv', signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: 'system:node:CLOUD2', organizations: ['system:nodes'], dnsNames: ['CLOUD2'] }, 'NodeMismatch'],
    ['a cloud node that is no proxy endpoint', { who: 'raven-proxy-server', on: 'cloud2', signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: 'system:node:CLOUD2', organizations: ['system:nodes'], dnsNames: ['CLOUD2'] }, 'NotAProxyNode'],
    ['client usages on the serving signer', { who: 'raven-proxy-server', on: 'srv', signer: 'kubernetes.io/kubelet-serving', usages: [...serving, 'client auth'], commonName: 'system:node:SRV', organizations: ['system:nodes'], dnsNames: ['SRV'] }, 'BadUsages'],
    ['an edge node that is not elected', { who: 'raven-proxy-client', on: 'edge2', signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'raven:proxy-client:EDGE2' }, 'NotAProxyNode'],
    ['API groups in the organization', { who: 'raven-proxy-client', on: 'edge', signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'raven:proxy-client:EDGE', organizations: ['system:nodes'] }, 'BadSubject'],
    ['SANs on a client identity', { who: 'raven-proxy-client', on: 'edge', signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'raven:proxy-client:EDGE', dnsNames: ['EDGE'] }, 'BadSANs'],
    ['a user name that is not a proxy-client', { who: 'raven-proxy-client', on: 'edge', signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'system:node:EDGE' }, 'BadSubject'],
    ['the serving signer from the client account', { who: 'raven-proxy-client', on: 'edge', signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: 'system:node:EDGE', organizations: ['system:nodes'], dnsNames: ['EDGE'] }, 'WrongSigner'],
    ['a token not bound to a pod', { who: 'raven-proxy-client', on: undefined, signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'raven:proxy-client:EDGE' }, 'UnboundRequester'],
    ['a proxy-client identity asked for by someone else', { who: 'admin', on: undefined, signer: 'kubernetes.io/kube-apiserver-client', usages: client, commonName: 'raven:proxy-client:EDGE' }, 'WrongRequester'],
  ] as const)('denies %s', async (_what, r, reason) => {
    const fill = (s: string) => s.replace('SRV', node.srv).replace('CLOUD2', node.cloud2).replace('EDGE2', node.edge2).replace('EDGE', node.edge);
    const as = r.who === 'admin' ? admin : await requester(r.who, r.on ? node[r.on] : undefined);
    const name = await file({
      as, signer: r.signer, usages: [...r.usages], commonName: fill(r.commonName),
      organizations: 'organizations' in r ? [...r.organizations] : undefined, dnsNames: 'dnsNames' in r ? r.dnsNames.map(fill) : undefined,
    });
    expect(await decision(name)).toMatchObject({ type: 'Denied', reason });
  });

  it('denies an address the node wrote into its own status when another node has it (node-writable SANs are checked)', async () => {
    const addresses = [{ type: 'InternalIP', address: '10.77.0.1' }, { type: 'ExternalIP', address: '203.0.113.7' }, { type: 'ExternalIP', address: '172.16.77.1' }];
    await admin.patch(RESOURCES.nodes, { name: node.srv, subresource: 'status' }, { status: { addresses } }, 'merge');
    try {
      await waitFor('the claim in the cache', async () => caches.nodes.get(node.srv)?.externalIPs.includes('172.16.77.1') === true, 5_000, 20);
      const name = await file({
        as: await requester('raven-proxy-server', node.srv), signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: `system:node:${node.srv}`,
        organizations: ['system:nodes'], dnsNames: [node.srv], ipAddresses: ['10.77.0.1', '172.16.77.1'],
      });
      expect(await decision(name)).toMatchObject({ type: 'Denied', reason: 'ForeignSANs', message: expect.stringContaining('172.16.77.1') });
    } finally {
      await admin.patch(RESOURCES.nodes, { name: node.srv, subresource: 'status' }, { status: { addresses: addresses.slice(0, 2) } }, 'merge');
    }
  });

  it('leaves everybody else\'s CSRs alone', async () => {
    const name = await file({ as: admin, signer: 'kubernetes.io/kubelet-serving', usages: serving, commonName: 'system:node:somebody', organizations: ['system:nodes'], dnsNames: ['somebody'] });
    await sleep(1_000);
    const csr = await admin.get<{ status?: { conditions?: unknown[] } }>(RESOURCES.csrs, { name });
    expect(csr.status?.conditions ?? []).toEqual([]);
    await admin.delete(RESOURCES.csrs, { name });
  });

  it('records a decision only on the request decided on: a CSR recreated under the same name is left for its own decision', async () => {
    const name = `recreated-${u}`;
    const fileAs = async (csrPem: string) => admin.create<{ metadata: { name: string; uid: string }; spec: { request: string; signerName: string } }>(RESOURCES.csrs, {
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName: 'kubernetes.io/kube-apiserver-client', usages: client },
    });
    const view = (o: Awaited<ReturnType<typeof fileAs>>): CsrView => ({ metadata: { name, uid: o.metadata.uid }, spec: { request: o.spec.request, signerName: o.spec.signerName } });
    const verdict = { verdict: 'deny', reason: 'Test', message: 'decided on the first request' } as const;
    const conditions = async () => (await admin.get<{ status?: { conditions?: unknown[] } }>(RESOURCES.csrs, { name })).status?.conditions ?? [];
    try {
      const { csrPem } = await createCsr({ commonName: 'some-requester' });
      const first = await fileAs(csrPem);
      await admin.delete(RESOURCES.csrs, { name });
      await waitFor('the first CSR gone', async () => admin.get(RESOURCES.csrs, { name }).then(() => false, () => true), 5_000, 20);
      expect(await recordDecision(pickupKube, view(first), verdict)).toBe('gone');
      // The same bytes filed again: only the uid tells the new request from the one decided on.
      const second = await fileAs(csrPem);
      expect(second.spec.request).toBe(first.spec.request);
      expect(await recordDecision(pickupKube, view(first), verdict)).toBe('replaced');
      // Same uid, other request bytes: not the request decided on either.
      const other = Buffer.from((await createCsr({ commonName: 'another-requester' })).csrPem).toString('base64');
      expect(await recordDecision(pickupKube, { ...view(second), spec: { ...view(second).spec, request: other } }, verdict)).toBe('replaced');
      expect(await conditions()).toEqual([]);
      expect(await recordDecision(pickupKube, view(second), verdict)).toBe('recorded');
      expect(await conditions()).toMatchObject([{ type: 'Denied', reason: 'Test' }]);
    } finally {
      await admin.delete(RESOURCES.csrs, { name }).catch(() => undefined);
    }
  });
});
