import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS, SYSTEM_NAMESPACE } from '@raven/api-types';
import { HealthServer, RESOURCES, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, registerNode, uniqueName } from '@raven/testbed';
import type { DiagnoseReport } from '../src/diagnose-command.ts';
import { deleteIfExists, ravenctl } from './support.ts';

/**
 * `ravenctl diagnose` asks each tunnel-agent Pod through the apiserver's pod proxy. The test control plane sends the
 * apiserver's traffic to Pods through an HTTP CONNECT proxy on a unix socket (its egress selector); this test listens
 * there and hands every tunnel to a local health server serving a recorded report, so the request takes the real path:
 * ravenctl → apiserver (authn, authz, pods/proxy) → egress → the agent's health port.
 */
const cluster = inject('cluster');
const s = uniqueName('ra');
const node = `${s}-gw`;
const pod = `raven-tunnel-agent-${s}`;
const POD_IP = '198.51.100.7';
const HEALTH_PORT = 10275;
const egressSocket = join(cluster.dir, 'cluster-egress.sock');
let kube: KubeClient;
let egress: Server | undefined;
let agent: HealthServer | undefined;
let agentPort = 0;
let answer: () => unknown;
const dialed: string[] = [];

const recorded = (): Record<string, unknown> => {
  const r = JSON.parse(readFileSync(new URL('./fixtures/agent-diagnose-gateway.json', import.meta.url), 'utf8')) as Record<string, unknown>;
  return { ...r, node, generatedAt: new Date().toISOString() };
};

async function diagnose(): Promise<{ code: number; report: DiagnoseReport }> {
  const { code, stdout, stderr } = await ravenctl(['diagnose', '-o', 'json', `--kubeconfig=${cluster.kubeconfig}`]);
  expect(stderr).toBe('');
  return { code, report: JSON.parse(stdout) as DiagnoseReport };
}
const ours = (r: DiagnoseReport) => r.findings.filter((f) => f.object === `node/${node}`).map((f) => `${f.severity} ${f.check}`);
const agentNotes = (r: DiagnoseReport) => (r.notes ?? []).filter((n) => n.topic === 'agents').map((n) => n.message);

beforeAll(async () => {
  kube = await adminClient(cluster);
  agent = new HealthServer('raven_test');
  agent.addJsonEndpoint('/debug/diagnose', () => answer());
  agentPort = await agent.listen(0, '127.0.0.1');
  // The apiserver dials the egress socket per connection; nothing else listens there without a real-node box.
  if (!existsSync(egressSocket)) {
    egress = createServer((_req, res) => res.writeHead(405).end());
    egress.on('connect', (req, socket, head) => {
      dialed.push(req.url ?? '');
      const upstream = connect(agentPort, '127.0.0.1', () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((resolve) => egress!.listen(egressSocket, resolve));
  }
  await registerNode(kube, { name: node, internalIP: '127.0.0.1', podCIDRs: ['10.246.1.0/24'], labels: { [LABELS.gateway]: `${s}-none` } });
  await kube.create(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod',
    metadata: { name: pod, namespace: SYSTEM_NAMESPACE, labels: { 'app.kubernetes.io/part-of': 'raven', 'app.kubernetes.io/component': 'tunnel-agent' } },
    spec: { nodeName: node, hostNetwork: true, containers: [{ name: 'tunnel-agent', image: 'ghcr.io/raven-ts/tunnel-agent:0.1.0', ports: [{ name: 'health', containerPort: HEALTH_PORT, protocol: 'TCP' }] }] },
  });
  const created = await kube.get<{ metadata: object; status?: object }>(RESOURCES.pods, { namespace: SYSTEM_NAMESPACE, name: pod });
  // No kubelet runs here: the test reports the Pod Running at an address only the egress proxy above can reach.
  await kube.replace(RESOURCES.pods, { namespace: SYSTEM_NAMESPACE, name: pod, subresource: 'status' }, {
    ...created, status: { phase: 'Running', podIP: POD_IP, podIPs: [{ ip: POD_IP }], hostIP: POD_IP },
  });
}, 120_000);

afterAll(async () => {
  await deleteIfExists(() => kube.delete(RESOURCES.pods, { namespace: SYSTEM_NAMESPACE, name: pod }));
  await deleteNode(kube, node);
  if (egress) {
    await new Promise<void>((resolve) => egress!.close(() => resolve()));
    egress.closeAllConnections();
    rmSync(egressSocket, { force: true });
  }
  await agent?.close();
  kube?.close();
});

describe('ravenctl diagnose asks each tunnel-agent through the pod proxy', () => {
  it.skipIf(existsSync(egressSocket) && !egress)('names the drift and the stale handshake the agent reports', async () => {
    answer = recorded;
    const { code, report } = await diagnose();
    expect(code).toBe(1);
    expect(dialed).toContain(`${POD_IP}:${HEALTH_PORT}`);
    // Other files share this apiserver and may hold tunnel-agent Pods of their own: only ours must have answered.
    expect(agentNotes(report)[0]).toMatch(/^[1-9]\d* of [1-9]\d* tunnel-agent\(s\) answered$/);
    expect(agentNotes(report).filter((n) => n.startsWith(`cannot ask tunnel-agent ${pod} `))).toEqual([]);
    expect(ours(report)).toEqual(['error handshake', 'warning kernel-drift']);
    const drift = report.findings.find((f) => f.check === 'kernel-drift' && f.object === `node/${node}`)!;
    expect(drift.message).toBe(`node ${node}: route 10.244.0.0/24 table 9027 via 10.0.0.1 was missing (repaired 3 time(s) in the last hour)`);
    expect(report.notes?.find((n) => n.topic === 'mtu' && n.message.startsWith(`node ${node}:`))?.message).toMatch(/MTU 1450/);
  });

  it.skipIf(existsSync(egressSocket) && !egress)('gather puts the agent\'s report in the bundle', async () => {
    answer = recorded;
    const dir = mkdtempSync(join(tmpdir(), 'ravenctl-gather-'));
    try {
      const file = join(dir, 'bundle.tar.gz');
      const { code, stderr } = await ravenctl(['gather', `--file=${file}`, `--kubeconfig=${cluster.kubeconfig}`]);
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      const files = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).trim().split('\n');
      expect(files).toContainEqual(expect.stringMatching(new RegExp(`/agents/${pod}\\.json$`)));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(existsSync(egressSocket) && !egress)('an answer that is not a report is a note, never trusted', async () => {
    answer = () => ({ kind: 'Something', text: '<script>alert(1)</script>' });
    const { report } = await diagnose();
    expect(ours(report)).toEqual([]);
    expect(agentNotes(report)).toContainEqual(expect.stringMatching(new RegExp(`^cannot ask tunnel-agent ${pod} on ${node}: answered something that is not a tunnel-agent diagnose report`)));
  });

  it.skipIf(existsSync(egressSocket) && !egress)('an agent that cannot be reached is an informational note, not an error', async () => {
    answer = () => {
      throw new Error('boom');
    };
    const { report } = await diagnose();
    expect(ours(report)).toEqual([]);
    expect(agentNotes(report)).toContainEqual(expect.stringMatching(new RegExp(`^cannot ask tunnel-agent ${pod} on ${node}: the apiserver's pod proxy answered 5\\d\\d`)));
  });
});
