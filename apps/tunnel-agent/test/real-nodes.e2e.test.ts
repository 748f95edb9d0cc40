import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { EDGE_WORKER_LABEL, kubectl, leftoverBoxCgroups, RavenBox, waitFor } from '@raven/testbed';

// Walkthrough section 2.2 on real nodes: kubelet + containerd + CNI on every box node, kube-scheduler placing pods.
const cluster = inject('cluster');
let rb: RavenBox;
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const started = Date.now();
const seconds = (since: number) => `${((Date.now() - since) / 1000).toFixed(1)} s`;

const WALKTHROUGH_DEPLOYMENT = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy-box
spec:
  replicas: 4
  selector:
    matchLabels:
      app: busy-box
  template:
    metadata:
      labels:
        app: busy-box
    spec:
      containers:
      - name: busy-box
        image: busybox
        command:
        - /bin/sh
        - -c
        - sleep 3000
      nodeSelector:
        openyurt.io/is-edge-worker: "true"
`;

interface PodRow { name: string; node: string; ip: string; phase: string }

async function busyBoxPods(): Promise<PodRow[]> {
  const out = await kubectl(cluster.kubeconfig, ['get', 'pods', '-n', 'default', '-l', 'app=busy-box', '-o',
    'jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase}{"\\n"}{end}']);
  return out.split('\n').filter(Boolean).map((line) => {
    const [name = '', node = '', ip = '', phase = ''] = line.split(' ');
    return { name, node, ip, phase };
  });
}

beforeAll(async () => {
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-realnodes-')), cluster, realNodes: true });
  console.log(`six real nodes Ready after ${seconds(started)}`);
  await rb.waitConverged(120_000);
  console.log(`Raven converged after ${seconds(started)}`);
}, 300_000);

afterAll(async () => {
  await kubectl(cluster.kubeconfig, ['delete', 'deployment', 'busy-box', '-n', 'default', '--ignore-not-found', '--wait=false']).catch(() => undefined);
  const t = Date.now();
  await rb?.down();
  console.log(`teardown took ${seconds(t)}`);
  // Nothing of the nodes is left: no cgroups (v1 hierarchies and the unified one), no kubelet or containerd.
  if (rb) expect(leftoverBoxCgroups(rb.box.id)).toEqual([]);
}, 180_000);

describe('walkthrough 2.2 on real nodes', () => {
  it('lists the six nodes Ready with kubelet v1.34 and a containerd runtime (kubectl get nodes -o wide)', async () => {
    const wide = await kubectl(cluster.kubeconfig, ['get', 'nodes', '-o', 'wide']);
    console.log(wide);
    const rows = await kubectl(cluster.kubeconfig, ['get', 'nodes', '-o',
      `jsonpath={range .items[*]}{.metadata.name} {.status.nodeInfo.kubeletVersion} {.status.nodeInfo.containerRuntimeVersion} {.status.conditions[?(@.type=="Ready")].status} {.metadata.labels.${EDGE_WORKER_LABEL.replace(/\./g, '\\.')}}{"\\n"}{end}`]);
    const nodes = rows.split('\n').filter(Boolean).map((l) => l.split(' '));
    const ours = nodes.filter(([name]) => rb.box.nodes.some((n) => n.name === name));
    expect(ours).toHaveLength(6);
    for (const [name, kubelet, runtime, ready, edge] of ours) {
      expect(kubelet, name).toMatch(/^v1\.34\./);
      expect(runtime, name).toMatch(/^containerd:\/\//);
      expect(ready, name).toBe('True');
      expect(edge, name).toBe(rb.box.node(name!).domain === 'cloud' ? 'false' : 'true');
    }
  });

  it('runs the busybox Deployment on the edge workers, placed by kube-scheduler, with CNI addresses in the nodes\' pod CIDRs', async () => {
    const t = Date.now();
    await kubectl(cluster.kubeconfig, ['apply', '-n', 'default', '-f', '-'], WALKTHROUGH_DEPLOYMENT);
    const pods = await waitFor('4 busy-box pods Running', async () => {
      const rows = await busyBoxPods();
      return rows.length === 4 && rows.every((p) => p.phase === 'Running' && p.ip) ? rows : undefined;
    }, 90_000, 500).catch(async (err: unknown) => {
      // What the cluster says about it, so a failure explains itself.
      const events = await kubectl(cluster.kubeconfig, ['get', 'events', '-A', '--sort-by=.lastTimestamp']).catch((e: unknown) => String(e));
      const all = await kubectl(cluster.kubeconfig, ['get', 'deploy,rs,pods', '-A', '-o', 'wide']).catch((e: unknown) => String(e));
      throw new Error(`${String(err)}\n${all}\n${events.split('\n').slice(-40).join('\n')}`);
    });
    console.log(`4 pods Running after ${seconds(t)}\n${await kubectl(cluster.kubeconfig, ['get', 'pod', '-n', 'default', '-o', 'wide'])}`);
    for (const pod of pods) {
      const node = rb.box.node(pod.node);
      expect(node.domain, pod.name).not.toBe('cloud');
      const [net, bits] = node.podCIDR.split('/');
      const toInt = (ip: string) => ip.split('.').reduce((a, o) => (a << 8) + Number(o), 0) >>> 0;
      const mask = bits === '0' ? 0 : (~0 << (32 - Number(bits))) >>> 0;
      expect((toInt(pod.ip) & mask) >>> 0, `${pod.name} ${pod.ip} in ${node.podCIDR}`).toBe(toInt(net!) & mask);
    }
  });

  it('pings a qingdao pod from a hangzhou pod with 0% loss (kubectl exec … -- ping)', async () => {
    const pods = await busyBoxPods();
    const hz = pods.find((p) => rb.box.node(p.node).domain === 'hangzhou');
    const qd = pods.find((p) => rb.box.node(p.node).domain === 'qingdao');
    expect(hz && qd).toBeTruthy();
    const out = await kubectl(cluster.kubeconfig, ['exec', '-n', 'default', hz!.name, '--', 'ping', qd!.ip, '-c', '4']);
    console.log(out);
    expect(out).toMatch(/4 packets transmitted, 4 packets received, 0% packet loss/);
    void HZ_MEMBER;
  });
});
