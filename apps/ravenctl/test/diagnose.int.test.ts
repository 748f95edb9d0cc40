import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { HEARTBEAT, LABELS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { HeartbeatRenewer, RESOURCES, createLogger, isNotFound, microTime, type KubeClient } from '@raven/controller-kit';
import { createCA, createCsr, issueCertificate } from '@raven/pki';
import { adminClient, deleteNode, registerNode, startApp, uniqueName, waitFor, type AppProcess } from '@raven/testbed';
import type { DiagnoseReport } from '../src/diagnose-command.ts';
import type { Finding } from '../src/diagnose.ts';
import { deleteIfExists, ensureRavenConfig, ravenctl } from './support.ts';

const cluster = inject('cluster');
const s = uniqueName('rd');
const cloud = `${s}-cloud`;
const edge = `${s}-edge`;
const nodes = { c1: `${s}-c1`, e1: `${s}-e1`, loose: `${s}-x`, skew: `${s}-skew`, alone: `${s}-alone` };
const csrName = `raven-proxy-client-${nodes.alone}-expired`;
const pod = `${s}-proxy-client`;
const PSK = `psk-${s}-0123456789abcdef`;
let kube: KubeClient;
let pickup: AppProcess | undefined;
let savedPsk: { data?: Record<string, string> } | undefined;
let savedConfig: Record<string, string> | undefined;
const agent = new AbortController();

const kubeconfig = () => `--kubeconfig=${cluster.kubeconfig}`;
async function findings(): Promise<{ code: number; ours: Finding[]; all: Finding[] }> {
  const { code, stdout, stderr } = await ravenctl(['diagnose', '-o', 'json', kubeconfig()]);
  expect(stderr).toBe('');
  const all = (JSON.parse(stdout) as DiagnoseReport).findings;
  return { code, all, ours: all.filter((f) => f.object.includes(s) || f.check === 'psk' || f.check === 'config') };
}
const brief = (f: Finding) => `${f.severity} ${f.check} ${f.object}`;

async function setPsk(present: boolean): Promise<void> {
  await deleteIfExists(() => kube.delete(RESOURCES.secrets, { namespace: SYSTEM_NAMESPACE, name: 'raven-agent-secret' }));
  if (present) {
    await kube.create(RESOURCES.secrets, {
      apiVersion: 'v1', kind: 'Secret', metadata: { name: 'raven-agent-secret', namespace: SYSTEM_NAMESPACE }, data: { 'vpn-connection-psk': Buffer.from(PSK).toString('base64') },
    });
  }
}

beforeAll(async () => {
  kube = await adminClient(cluster);
  savedPsk = await kube.get<{ data?: Record<string, string> }>(RESOURCES.secrets, { namespace: SYSTEM_NAMESPACE, name: 'raven-agent-secret' }).catch((err: unknown) => {
    if (isNotFound(err)) return undefined;
    throw err;
  });
  savedConfig = await kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, { namespace: SYSTEM_NAMESPACE, name: 'raven-cfg' }).then((c) => c.data, () => undefined);
  await ensureRavenConfig(kube, { 'enable-l3-tunnel': 'true', 'enable-l7-proxy': 'true' });
  await setPsk(true);
  // 127.0.0.1: log requests for Pods on these nodes fail fast (no kubelet listens) instead of timing out.
  await registerNode(kube, { name: nodes.c1, internalIP: '127.0.0.1', podCIDRs: ['10.245.1.0/24'], labels: { [LABELS.gateway]: cloud } });
  await registerNode(kube, { name: nodes.e1, internalIP: '127.0.0.1', podCIDRs: ['10.245.2.0/24'], labels: { [LABELS.gateway]: edge } });
  await registerNode(kube, { name: nodes.skew, internalIP: '127.0.0.1', podCIDRs: ['10.245.3.0/24'], labels: { [LABELS.gateway]: edge } });
  const gw = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  // Exposed, but nobody said what its public address is.
  await gw(cloud, { exposeType: 'PublicIP', proxyConfig: { Replicas: 0 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: nodes.c1, type: 'tunnel' }] });
  await gw(edge, { proxyConfig: { Replicas: 0 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: nodes.e1, type: 'tunnel', underNAT: true }] });
  for (const nodeName of [nodes.c1, nodes.e1]) {
    void new HeartbeatRenewer({ kube, log: createLogger('test', { level: 'silent' }), component: 'tunnel', nodeName }).run(agent.signal);
  }
  await kube.create(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: pod, namespace: SYSTEM_NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'raven', 'app.kubernetes.io/component': 'proxy-client' } },
    spec: { nodeName: nodes.e1, containers: [{ name: 'proxy-client', image: 'ghcr.io/raven-ts/proxy-client:0.1.0', env: [{ name: 'VPN_PSK', value: PSK }] }] },
  });
  pickup = await startApp('gateway-pickup', { access: cluster, serviceAccount: 'raven-gateway-pickup', name: `pickup-${s}`, args: ['--controllers=gatewaypickup', '--leader-elect=false'] });
  await waitFor('both Gateways elected', async () => {
    const list = await kube.list<{ metadata: { name: string }; status?: { activeEndpoints?: unknown[] } }>(RESOURCES.gateways);
    return [cloud, edge].every((n) => (list.items.find((g) => g.metadata.name === n)?.status?.activeEndpoints?.length ?? 0) > 0);
  }, 30_000, 100);
}, 120_000);

afterAll(async () => {
  agent.abort();
  await pickup?.stop();
  for (const name of [cloud, edge]) await deleteIfExists(() => kube.delete(RESOURCES.gateways, { name }));
  for (const name of Object.values(nodes)) await deleteNode(kube, name);
  await deleteIfExists(() => kube.delete(RESOURCES.pods, { namespace: SYSTEM_NAMESPACE, name: pod }));
  await deleteIfExists(() => kube.delete(RESOURCES.csrs, { name: csrName }));
  await deleteIfExists(() => kube.delete(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: `raven-tunnel-${nodes.skew}` }));
  await deleteIfExists(() => kube.delete(RESOURCES.secrets, { namespace: SYSTEM_NAMESPACE, name: 'raven-agent-secret' }));
  if (savedPsk?.data) await kube.create(RESOURCES.secrets, { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'raven-agent-secret', namespace: SYSTEM_NAMESPACE }, data: savedPsk.data });
  if (savedConfig) await ensureRavenConfig(kube, savedConfig);
  kube?.close();
});

describe('ravenctl diagnose against the real control plane, with faults injected', () => {
  it('names the exposed Gateway without a publicIP, and exits 1', async () => {
    const { code, ours } = await findings();
    expect(code).toBe(1);
    expect(ours.map(brief)).toEqual([`error public-ip gateway/${cloud}`]);
    expect(ours[0]!.fix).toBe(`kubectl annotate node '${nodes.c1}' raven.openyurt.io/public-ip=<public-ip>   (or set publicIP on the endpoint in the Gateway spec)`);
  });

  it('a node without a Gateway label', async () => {
    await registerNode(kube, { name: nodes.loose, internalIP: '127.0.0.1' });
    expect((await findings()).ours.map(brief)).toContain(`warning node-gateway-label node/${nodes.loose}`);
    await deleteNode(kube, nodes.loose);
  });

  it('a member node without a pod subnet', async () => {
    const bare = `${s}-bare`;
    await registerNode(kube, { name: bare, internalIP: '127.0.0.1', labels: { [LABELS.gateway]: edge } });
    try {
      await waitFor('pod-subnet finding', async () => (await findings()).ours.find((f) => f.check === 'pod-subnet' && f.object === `gateway/${edge}` && f.message.endsWith(bare)), 15_000, 200);
    } finally {
      await deleteNode(kube, bare);
    }
  });

  it('L3 switched off in raven-cfg', async () => {
    await ensureRavenConfig(kube, { 'enable-l3-tunnel': 'false', 'enable-l7-proxy': 'true' });
    try {
      const f = (await findings()).ours.find((x) => x.check === 'config');
      expect(f?.message).toMatch(/enable-l3-tunnel is "false"/);
    } finally {
      await ensureRavenConfig(kube, { 'enable-l3-tunnel': 'true', 'enable-l7-proxy': 'true' });
    }
  });

  it('the PSK Secret deleted', async () => {
    await setPsk(false);
    try {
      expect((await findings()).ours.map(brief)).toContain('error psk secret/kube-system/raven-agent-secret');
    } finally {
      await setPsk(true);
    }
    expect((await findings()).ours.map(brief)).not.toContain('error psk secret/kube-system/raven-agent-secret');
  });

  it('an expired proxy-client certificate issued through the CSR API (of a node in no Gateway, which serves itself)', async () => {
    await registerNode(kube, { name: nodes.alone, internalIP: '127.0.0.1' });
    onTestFinished(() => deleteNode(kube, nodes.alone));
    const ca = await createCA('expired-test-ca');
    const { csrPem } = await createCsr({ commonName: `raven:proxy-client:${nodes.alone}` });
    const { certPem } = await issueCertificate(ca, { commonName: `raven:proxy-client:${nodes.alone}`, usages: ['client'], validityDays: -1 / 1440 });
    // A signer nobody serves, so that only this test writes the certificate; the name is what proxy-client uses.
    await kube.create(RESOURCES.csrs, {
      apiVersion: 'certificates.k8s.io/v1', kind: 'CertificateSigningRequest', metadata: { name: csrName },
      spec: { request: Buffer.from(csrPem).toString('base64'), signerName: 'raven.test/expired', usages: ['digital signature', 'client auth'] },
    });
    const csr = await kube.get<{ metadata: object }>(RESOURCES.csrs, { name: csrName });
    await kube.replace(RESOURCES.csrs, { name: csrName, subresource: 'approval' }, { ...csr, status: { conditions: [{ type: 'Approved', status: 'True', reason: 'Test', message: 'test' }] } });
    const approved = await kube.get<{ metadata: object; status: object }>(RESOURCES.csrs, { name: csrName });
    await kube.replace(RESOURCES.csrs, { name: csrName, subresource: 'status' }, { ...approved, status: { ...approved.status, certificate: Buffer.from(certPem).toString('base64') } });
    const f = (await findings()).ours.find((x) => x.check === 'certificate');
    expect(f).toMatchObject({ severity: 'error', object: `csr/${csrName}` });
    expect(f!.message).toMatch(new RegExp(`proxy-client certificate for ${nodes.alone} expired`));
  });

  it('a node clock a minute ahead, seen in its heartbeat Lease', async () => {
    await kube.create(RESOURCES.leases, {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: `raven-tunnel-${nodes.skew}`, namespace: HEARTBEAT.namespace, labels: { [HEARTBEAT.label]: 'tunnel' } },
      spec: { holderIdentity: nodes.skew, leaseDurationSeconds: 120, renewTime: microTime(new Date(Date.now() + 60_000)) },
    });
    const f = (await findings()).ours.find((x) => x.check === 'clock-skew');
    expect(f).toMatchObject({ severity: 'warning', object: `node/${nodes.skew}` });
    expect(f!.message).toMatch(/clock is about (59|60|61)s ahead of the apiserver/);
  });

  it('a stopped agent: its heartbeat goes stale and diagnose names the node', async () => {
    expect((await findings()).ours.filter((f) => f.check === 'heartbeat')).toEqual([]);
    agent.abort();
    await waitFor('stale heartbeat reported', async () => (await findings()).ours.some((f) => f.check === 'heartbeat' && f.object.endsWith(`raven-tunnel-${nodes.e1}`)), 10_000, 250);
    const f = (await findings()).ours.find((x) => x.object.endsWith(`raven-tunnel-${nodes.e1}`))!;
    expect(f.severity).toBe('error');
    expect(f.message).toMatch(new RegExp(`tunnel-agent on ${nodes.e1} stopped heartbeating: last renewal \\d+s ago \\(valid 2s\\)`));
  });
});

describe('ravenctl gather against the real control plane', () => {
  it('writes one tar.gz with the objects, diagnose output and errors, and no secret value anywhere', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ravenctl-gather-'));
    const file = join(dir, 'bundle.tar.gz');
    const { code, stdout, stderr } = await ravenctl(['gather', `--file=${file}`, kubeconfig()]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^wrote ${file}: \\d+ files, diagnose found \\d+ problem\\(s\\)`));
    execFileSync('tar', ['-xzf', file, '-C', dir]);
    const [root] = readdirSync(dir).filter((n) => n.startsWith('raven-gather-'));
    const read = (p: string) => readFileSync(join(dir, root!, p), 'utf8');
    const files = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n').map((p) => p.slice(root!.length + 1)).sort();
    for (const expected of ['version.txt', 'show.json', 'diagnose.json', 'topology.dot', 'errors.txt', 'resources/gateways.yaml', 'resources/nodes.yaml', 'resources/secrets.yaml', 'resources/pods.yaml', 'resources/leases-heartbeats.yaml', 'resources/crd-gateways.yaml']) {
      expect(files).toContain(expected);
    }
    expect(read('resources/gateways.yaml')).toContain(`name: ${cloud}`);
    expect(read('resources/secrets.yaml')).toMatch(/vpn-connection-psk: REDACTED \(\d+ bytes\)/);
    expect(read('resources/pods.yaml')).toMatch(/name: VPN_PSK\n\s+value: REDACTED/);
    expect(read('errors.txt')).toContain(`logs of ${pod}/proxy-client`);
    expect(JSON.parse(read('diagnose.json')).findings.some((f: Finding) => f.object === `gateway/${cloud}`)).toBe(true);
    const everything = files.map(read).join('\n');
    expect(everything).not.toContain(PSK);
    expect(everything).not.toContain(Buffer.from(PSK).toString('base64'));
    // gateway-pickup's webhook Secret holds its CA key: list items carry no kind, redaction must still know them as Secrets.
    expect(read('resources/secrets.yaml')).toMatch(/name: raven-gateway-pickup-webhook-certs[\s\S]*ca\.key: REDACTED \(\d+ bytes\)/);
    expect(everything).not.toContain('PRIVATE KEY');
    expect(everything).not.toContain(Buffer.from('-----BEGIN PRIVATE KEY-----').toString('base64'));
  });
});
