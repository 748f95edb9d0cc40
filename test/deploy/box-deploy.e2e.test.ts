import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, leftoverBoxCgroups, RavenBox, realWalkthroughTopology, startCluster, TSX_LOADER, waitFor, WALKTHROUGH_NODES, WORKSPACE_ROOT, type Cluster, type ClusterInfo } from '@raven/testbed';

/**
 * Issue 11's first proof: Raven runs as Pods of its own images. The box builds the four images from their
 * Dockerfiles (cached), imports them into every real node's containerd, and installs Raven as the README says:
 * the PSK Secret, the node labels, `kubectl apply --server-side -k k8s/overlays/box`, the Gateways. Then the
 * walkthrough's `kubectl get pod -n kube-system`, the Pods' JSON logs, `ravenctl verify` (the pod matrix, ClusterIPs,
 * large packets and L7 by node name) and the loss of gateway-pickup's leader.
 */
let controlPlane: Cluster;
let cluster: ClusterInfo;
let rb: RavenBox;
const kc = (args: string[]) => kubectl(cluster.kubeconfig, args);
const started = Date.now();
const { hzGateway: HZ_GATEWAY } = WALKTHROUGH_NODES;

interface PodRow { name: string; node: string; ready: boolean; phase: string; app: string }
async function ravenPods(): Promise<PodRow[]> {
  const list = JSON.parse(await kc(['-n', 'kube-system', 'get', 'pods', '-o', 'json'])) as {
    items: { metadata: { name: string; labels?: Record<string, string> }; spec: { nodeName?: string }; status: { phase?: string; conditions?: { type: string; status: string }[] } }[];
  };
  return list.items.filter((p) => p.metadata.name.startsWith('raven-')).map((p) => ({
    name: p.metadata.name, node: p.spec.nodeName ?? '', phase: p.status.phase ?? '',
    ready: p.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false,
    app: p.metadata.labels?.['app.kubernetes.io/component'] ?? p.metadata.labels?.['k8s-app'] ?? p.metadata.name,
  }));
}

function ravenctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const program = process.env.RAVEN_APP_MODE === 'bundle' ? [join(WORKSPACE_ROOT, 'dist/apps/ravenctl/main.js')] : ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/ravenctl/src/main.ts')];
  return new Promise((resolve) => {
    execFile(process.execPath, [...program, ...args], { cwd: WORKSPACE_ROOT, env: { PATH: process.env.PATH, HOME: '/nonexistent', KUBECONFIG: cluster.kubeconfig }, timeout: 120_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  // Raven's own gateway-pickup Pods serve the CRD's conversion webhook here.
  controlPlane = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-deploy-cp-')), webhook: false });
  cluster = controlPlane.info();
  rb = await RavenBox.up({
    dir: mkdtempSync(join(tmpdir(), 'raven-deploy-')), cluster, realNodes: true, topology: realWalkthroughTopology(),
    deploy: { log: (line) => console.log(`[deploy ${((Date.now() - started) / 1000).toFixed(0)} s] ${line}`) },
  });
  await rb.waitConverged(180_000);
  const edge = rb.box.nodes.filter((n) => n.domain !== 'cloud').map((n) => n.name);
  await waitFor('the apiserver reaching every edge kubelet through the L7 proxy', async () => (await Promise.all(edge.map((n) => kc(['get', '--raw', `/api/v1/nodes/${n}/proxy/healthz`]).catch(() => '')))).every((a) => a === 'ok'), 120_000, 500);
  console.log(`Raven deployed from its images and converged after ${((Date.now() - started) / 1000).toFixed(1)} s`);
}, 1_200_000);

afterAll(async () => {
  const id = rb?.box.id;
  await rb?.down();
  await controlPlane?.destroy();
  if (id) expect(leftoverBoxCgroups(id)).toEqual([]);
}, 180_000);

describe('Raven as Pods of its own images, installed with kubectl apply -k', () => {
  it('kubectl get pod -n kube-system: gateway-pickup (2, one leader), a tunnel-agent on every node, proxy-server and proxy-clients where placed, raven-proxy-dns; all Running and Ready', async () => {
    const pods = await ravenPods();
    console.log((await kc(['-n', 'kube-system', 'get', 'pods', '-o', 'wide'])).split('\n').filter((l) => /^NAME|raven/.test(l)).join('\n'));
    const count = (prefix: string) => pods.filter((p) => p.name.startsWith(prefix)).length;
    expect(count('raven-gateway-pickup-')).toBe(2);
    expect(pods.filter((p) => p.name.startsWith('raven-tunnel-agent-')).map((p) => p.node).sort()).toEqual(rb.box.nodes.map((n) => n.name).sort());
    expect(count('raven-proxy-server-')).toBe(1);
    // proxy-client where the README's labels put it: the other Gateways' proxy endpoints and the node in no Gateway.
    expect(count('raven-proxy-client-')).toBe(3);
    expect(count('raven-proxy-dns-')).toBe(2);
    expect(pods.filter((p) => p.phase !== 'Running' || !p.ready).map((p) => p.name)).toEqual([]);
    const leader = await kc(['-n', 'kube-system', 'get', 'lease', 'raven-gateway-pickup', '-o', 'jsonpath={.spec.holderIdentity}']);
    expect(pods.some((p) => p.name.startsWith('raven-gateway-pickup-') && leader.startsWith(p.name))).toBe(true);
  });

  it('kubectl logs of each Raven Pod shows its JSON logs', async () => {
    for (const pod of (await ravenPods()).filter((p) => !p.name.startsWith('raven-proxy-dns-'))) {
      const line = (await kc(['-n', 'kube-system', 'logs', pod.name, '--tail=1'])).trim();
      expect(() => JSON.parse(line), `${pod.name}: ${line}`).not.toThrow();
      expect((JSON.parse(line) as { level?: unknown }).level, pod.name).toBeTypeOf('string');
    }
  });

  it('ravenctl verify passes the whole matrix: pod to pod, 3000-byte pings, ClusterIPs across domains, L7 to every edge node by name', async () => {
    const r = await ravenctl(['verify', '-o', 'json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const rows = (JSON.parse(r.stdout) as { rounds: { rows: { kind: string }[] }[] }).rounds[0]!.rows;
    expect(new Set(rows.map((row) => row.kind))).toEqual(new Set(['pod', 'large', 'service', 'l7']));
  });

  it('deleting the leader gateway-pickup Pod: the other replica takes over within the lease', async () => {
    const lease = async () => {
      const { spec } = JSON.parse(await kc(['-n', 'kube-system', 'get', 'lease', 'raven-gateway-pickup', '-o', 'json'])) as { spec: { holderIdentity?: string; leaseDurationSeconds?: number } };
      return [spec.holderIdentity ?? '', String(spec.leaseDurationSeconds ?? '')] as const;
    };
    const [holder, duration] = await lease();
    const leaderPod = (await ravenPods()).find((p) => p.name.startsWith('raven-gateway-pickup-') && holder!.startsWith(p.name))!;
    const t = Date.now();
    await kc(['-n', 'kube-system', 'delete', 'pod', leaderPod.name, '--wait=false']);
    let next = '';
    await waitFor('another gateway-pickup leads', async () => {
      [next] = await lease();
      return next !== '' && !next.startsWith(leaderPod.name);
    }, 60_000, 200);
    const seconds = (Date.now() - t) / 1000;
    expect((await ravenPods()).some((p) => p.name.startsWith('raven-gateway-pickup-') && p.name !== leaderPod.name && next.startsWith(p.name))).toBe(true);
    console.log(`gateway-pickup leader ${leaderPod.name} deleted: ${next} leads after ${seconds.toFixed(1)} s (lease ${duration} s)`);
    expect(seconds).toBeLessThanOrEqual(Number(duration) + 2);
    // The new leader acts: a new Gateway gets its status (conditions) from it.
    await kubectl(cluster.kubeconfig, ['apply', '-f', '-'], JSON.stringify({ apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw-after-failover' }, spec: {} }));
    await waitFor('the new leader writes the new Gateway\'s status', async () => (await kc(['get', 'gateway', 'gw-after-failover', '-o', 'jsonpath={.status.conditions[*].type}'])).includes('Ready'), 30_000, 250);
    await kc(['delete', 'gateway', 'gw-after-failover']);
  });

  it('kubectl delete -k removes Raven, and the stopping agents leave no Raven state in any node\'s kernel (last)', async () => {
    const before = await rb.box.node(HZ_GATEWAY).exec('ip', ['link', 'show', 'raven-wg0']);
    expect(before.stdout).toContain('raven-wg0');
    const t = Date.now();
    // The README's uninstall: the overlay, the PSK Secret, and what gateway-pickup created at run time.
    await kc(['delete', '-k', join(WORKSPACE_ROOT, 'k8s/overlays/box'), '--ignore-not-found', '--wait=false']);
    await kc(['-n', 'kube-system', 'delete', 'secret', 'raven-agent-secret', 'raven-proxy-server-kubelet-client', '--ignore-not-found']);
    await kc(['-n', 'kube-system', 'delete', 'service,endpointslice,configmap,secret', '-l', 'app.kubernetes.io/managed-by=raven-ts', '--ignore-not-found']);
    await waitFor('every Raven Pod gone', async () => (await ravenPods()).length === 0, 120_000, 500);
    console.log(`kubectl delete -k: every Raven Pod gone after ${((Date.now() - t) / 1000).toFixed(1)} s`);
    const leftovers: string[] = [];
    for (const node of rb.box.nodes) {
      const sh = (cmd: string, args: string[]) => node.exec(cmd, args).then((r) => r.stdout, () => '');
      const links = (await sh('ip', ['-o', 'link', 'show'])).split('\n').filter((l) => /raven/.test(l));
      const rules = (await sh('ip', ['rule'])).split('\n').filter((l) => /lookup (9027|9028)/.test(l));
      const routes = (await sh('ip', ['route', 'show', 'table', 'all'])).split('\n').filter((l) => /table (9027|9028)/.test(l));
      // Raven's own chains and sets (kube-proxy's rules for Services of other names are not Raven's).
      const chains = (await sh('iptables-save', [])).split('\n').filter((l) => /^:RAVEN|-[AIj] RAVEN|--match-set raven-/.test(l) || /x-raven-proxy-internal-svc|raven-proxy-dns/.test(l));
      const sets = (await sh('ipset', ['list', '-n'])).split('\n').filter((l) => /raven/.test(l));
      for (const line of [...links, ...rules, ...routes, ...chains, ...sets]) leftovers.push(`${node.name}: ${line}`);
    }
    expect(leftovers).toEqual([]);
    expect(await kc(['-n', 'kube-system', 'get', 'all,configmaps,secrets,endpointslices', '-o', 'name'])).not.toMatch(/raven/);
  });
});
