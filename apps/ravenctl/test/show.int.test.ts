import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS, SYSTEM_NAMESPACE, type Connection } from '@raven/api-types';
import { HeartbeatRenewer, RESOURCES, createLogger, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, registerNode, startApp, uniqueName, waitFor, type AppProcess } from '@raven/testbed';
import type { ShowView } from '../src/show.ts';
import { deleteIfExists, ensureRavenConfig, ravenctl, ravenctlProcess } from './support.ts';

const cluster = inject('cluster');
const s = uniqueName('rc');
const cloud = `${s}-cloud`;
const edge = `${s}-edge`;
const nodes = { c1: `${s}-c1`, c2: `${s}-c2`, e1: `${s}-e1`, e2: `${s}-e2`, loose: `${s}-x` };
const pod = `${s}-tunnel-agent`;
let kube: KubeClient;
let pickup: AppProcess | undefined;
const heartbeats = new AbortController();

beforeAll(async () => {
  kube = await adminClient(cluster);
  await ensureRavenConfig(kube, { 'enable-l3-tunnel': 'true', 'enable-l7-proxy': 'true' });
  await registerNode(kube, { name: nodes.c1, internalIP: '10.97.0.1', externalIP: '203.0.113.10', podCIDRs: ['10.244.1.0/24'], labels: { [LABELS.gateway]: cloud } });
  await registerNode(kube, { name: nodes.c2, internalIP: '10.97.0.2', podCIDRs: ['10.244.2.0/24'], labels: { [LABELS.gateway]: cloud } });
  await registerNode(kube, { name: nodes.e1, internalIP: '192.168.7.1', podCIDRs: ['10.244.3.0/24'], labels: { [LABELS.gateway]: edge } });
  await registerNode(kube, { name: nodes.e2, internalIP: '192.168.7.2', podCIDRs: ['10.244.4.0/24'], labels: { [LABELS.gateway]: edge } });
  await registerNode(kube, { name: nodes.loose, internalIP: '10.97.0.9' });
  const gw = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  await gw(cloud, { exposeType: 'PublicIP', proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: nodes.c1, type: 'tunnel', publicIP: '203.0.113.10' }, { nodeName: nodes.c1, type: 'proxy', publicIP: '203.0.113.10' }] });
  await gw(edge, { proxyConfig: { Replicas: 0 }, tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: nodes.e1, type: 'tunnel', underNAT: true }] });
  // The heartbeat contract's own renewer, as tunnel-agent runs it on each gateway node.
  for (const nodeName of [nodes.c1, nodes.e1]) {
    void new HeartbeatRenewer({ kube, log: createLogger('test', { level: 'silent' }), component: 'tunnel', nodeName }).run(heartbeats.signal);
  }
  // A workload Pod as the DaemonSet would create it (no kubelet runs it here; its spec and labels are what ravenctl reads).
  await kube.create(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: pod, namespace: SYSTEM_NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'raven', 'app.kubernetes.io/component': 'tunnel-agent', 'app.kubernetes.io/name': 'raven-tunnel-agent' } },
    spec: { nodeName: nodes.e1, containers: [{ name: 'tunnel-agent', image: 'ghcr.io/raven-ts/tunnel-agent:0.1.0' }] },
  });
  pickup = await startApp('gateway-pickup', {
    access: cluster, serviceAccount: 'raven-gateway-pickup', name: `pickup-${s}`,
    args: ['--controllers=gatewaypickup', '--leader-elect=true', '--leader-elect-lease-duration=4s', '--leader-elect-renew-deadline=3s', '--leader-elect-retry-period=500ms'], waitReady: false,
  });
  await waitFor('both Gateways elected', async () => {
    const list = await kube.list<{ metadata: { name: string }; status?: { activeEndpoints?: unknown[] } }>(RESOURCES.gateways);
    return [cloud, edge].every((n) => (list.items.find((g) => g.metadata.name === n)?.status?.activeEndpoints?.length ?? 0) > 0);
  }, 40_000, 100);
  // What the active tunnel agent of each Gateway publishes about its peers.
  const connection = (gateway: string, nodeName: string, extra: Partial<Connection>): Connection => ({ gateway, nodeName, status: 'Connected', latencyRTT: { last: '0.8ms', min: '0.5ms', average: '0.7ms', max: '1.1ms' }, ...extra });
  await kube.patch(RESOURCES.gateways, { name: cloud, subresource: 'status' }, { status: { connections: [connection(edge, nodes.e1, { endpoint: '198.51.100.7:4500' })] } }, 'merge', { fieldManager: 'raven-tunnel-agent' });
  await kube.patch(RESOURCES.gateways, { name: edge, subresource: 'status' }, { status: { connections: [connection(cloud, nodes.c1, { endpoint: '203.0.113.10:4500' })] } }, 'merge', { fieldManager: 'raven-tunnel-agent' });
}, 120_000);

afterAll(async () => {
  heartbeats.abort();
  await pickup?.stop();
  for (const name of [cloud, edge]) await deleteIfExists(() => kube.delete(RESOURCES.gateways, { name }));
  for (const name of Object.values(nodes)) await deleteNode(kube, name);
  await deleteIfExists(() => kube.delete(RESOURCES.pods, { namespace: SYSTEM_NAMESPACE, name: pod }));
  kube?.close();
});

describe('ravenctl show against the real control plane', () => {
  it('reports Gateways, domains, connections, heartbeats and versions as JSON', async () => {
    const { code, stdout, stderr } = await ravenctl(['show', '-o', 'json', `--kubeconfig=${cluster.kubeconfig}`]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    const view = JSON.parse(stdout) as ShowView;
    const cloudRow = view.gateways.find((g) => g.name === cloud)!;
    expect(cloudRow).toMatchObject({ exposeType: 'PublicIP', ready: 'True (EndpointsElected)', members: 2 });
    expect(cloudRow.activeEndpoints).toEqual([`proxy/${nodes.c1}:10262 public 203.0.113.10`, `tunnel/${nodes.c1}:4500 public 203.0.113.10`].sort());
    expect(view.gateways.find((g) => g.name === edge)).toMatchObject({ underNAT: true, activeEndpoints: [`tunnel/${nodes.e1}:4500`] });

    const ours = view.nodes.filter((n) => n.name.startsWith(s)).map((n) => `${n.gateway} ${n.name} ${n.role}`);
    expect(ours).toEqual([
      `${cloud} ${nodes.c1} active-tunnel+proxy`, `${cloud} ${nodes.c2} member`,
      `${edge} ${nodes.e1} active-tunnel`, `${edge} ${nodes.e2} member`, `- ${nodes.loose} member`,
    ]);
    expect(view.connections.filter((c) => c.gateway === cloud || c.gateway === edge)).toEqual([
      { gateway: cloud, node: nodes.c1, peerGateway: edge, peerNode: nodes.e1, status: 'Connected', endpoint: '198.51.100.7:4500', rtt: '0.8ms (avg 0.7ms)', relayedVia: '-', message: '' },
      { gateway: edge, node: nodes.e1, peerGateway: cloud, peerNode: nodes.c1, status: 'Connected', endpoint: '203.0.113.10:4500', rtt: '0.8ms (avg 0.7ms)', relayedVia: '-', message: '' },
    ]);
    const beat = view.heartbeats.find((h) => h.holder === nodes.e1)!;
    expect(beat).toMatchObject({ lease: `raven-tunnel-${nodes.e1}`, component: 'tunnel', durationSeconds: 2, fresh: true });
    expect(beat.ageSeconds).toBeLessThan(2);
    expect(view.components).toContainEqual({ component: 'tunnel-agent', instance: `pod/${pod}`, node: nodes.e1, version: '0.1.0', status: 'Pending' });
    expect(view.components).toContainEqual(expect.objectContaining({ component: 'tunnel-agent', instance: `lease/raven-tunnel-${nodes.c1}`, status: 'heartbeating' }));
    expect(view.components).toContainEqual(expect.objectContaining({ component: 'gateway-pickup', status: 'leading' }));
  });

  it('prints tables by default and YAML on request', async () => {
    const table = await ravenctl(['show', `--kubeconfig=${cluster.kubeconfig}`]);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(new RegExp(`${edge}\\s+${nodes.e1}\\s+${cloud}\\s+${nodes.c1}\\s+Connected\\s+203\\.0\\.113\\.10:4500`));
    const yaml = await ravenctl(['show', '-o', 'yaml'], { KUBECONFIG: cluster.kubeconfig });
    expect(yaml.code).toBe(0);
    expect(yaml.stdout).toContain(`- name: ${cloud}\n    exposeType: PublicIP`);
  });

  it('graphs the same topology as DOT and SVG', async () => {
    const dot = await ravenctl(['graph', `--kubeconfig=${cluster.kubeconfig}`]);
    expect(dot.code).toBe(0);
    expect(dot.stdout).toContain(`label="${cloud} (exposed)";`);
    expect(dot.stdout).toMatch(new RegExp(`d\\d+ -- d\\d+ \\[color="#2e7d32", label="0.7ms", tooltip="${cloud} → ${edge}: Connected; ${edge} → ${cloud}: Connected"\\]`));
    const svg = await ravenctl(['graph', '-f', 'svg', '--layout=builtin', `--kubeconfig=${cluster.kubeconfig}`]);
    expect(svg.code).toBe(0);
    expect(svg.stdout).toMatch(/^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svg.stdout).toContain(`>${nodes.e1} [tunnel]</text>`);
  });

  it('exits 2 on usage errors and 3 when the cluster cannot be reached, as a real process', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ravenctl-'));
    const dead = join(dir, 'kubeconfig');
    writeFileSync(dead, ['apiVersion: v1', 'kind: Config', 'clusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]',
      'users: [{name: u, user: {token: t}}]', 'contexts: [{name: x, context: {cluster: c, user: u}}]', 'current-context: x'].join('\n'));
    const [usage, unknownFlag, unreachable, help] = await Promise.all([
      ravenctlProcess(['frobnicate']), ravenctlProcess(['show', '--bogus']), ravenctlProcess(['show', `--kubeconfig=${dead}`]), ravenctlProcess(['show', '--help']),
    ]);
    expect([usage.code, unknownFlag.code, unreachable.code, help.code]).toEqual([2, 2, 3, 0]);
    expect(usage.stderr).toContain('unknown command "frobnicate"');
    expect(unknownFlag.stderr).toContain("Unknown option '--bogus'");
    expect(unreachable.stderr).toMatch(/cannot read the cluster: .*ECONNREFUSED/);
    expect(help.stdout).toContain('--output=VALUE');
  });
});
