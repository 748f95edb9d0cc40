// npm run demo [-- --keep | --down]: the walkthrough made real on one machine.
// A real control plane and the walkthrough's three network domains (cloud, hangzhou and qingdao behind NAT) as
// network namespaces whose nodes run real kubelets, containerd and kube-proxy; Raven installed from its own images
// with kubectl apply -k, as the README says. Then the walkthrough's own kubectl commands.
// --keep leaves the cluster and the box running (.demo/cluster/kubeconfig); --down removes them.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Box, ControlPlane, CONFLICTING_IP, RavenBox, RealNodes, WALKTHROUGH_NODES, WORKSPACE_ROOT, kubectl, pidAlive, podMatrixFailures,
  probeDaemonSet, realWalkthroughTopology, runningPods, startCluster, waitFor, type ClusterInfo,
} from '@raven/testbed';

const DEMO_DIR = join(WORKSPACE_ROOT, '.demo');
const STATE = join(DEMO_DIR, 'demo.json');
const bold = (s: string) => `\x1b[1m${s}\x1b[0m`;
const step = (title: string) => console.log(`\n${bold(`== ${title}`)}`);

const { hzGateway: HZ_GW, hzMember: HZ_2, qdGateway: QD_GW, cloudGateway: CLOUD_GW, lone: LONE } = WALKTHROUGH_NODES;

async function down(): Promise<void> {
  if (!existsSync(STATE)) {
    console.log('no demo is running');
    return;
  }
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as { pids: number[] };
  for (const pid of state.pids) if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
  await Box.downFromState(join(DEMO_DIR, 'box'));
  await RealNodes.downFromState(join(DEMO_DIR, 'box'));
  await ControlPlane.stopFromState(join(DEMO_DIR, 'cluster'));
  rmSync(DEMO_DIR, { recursive: true, force: true });
  console.log('demo torn down');
}

async function main(): Promise<void> {
  const keep = process.argv.includes('--keep');
  if (process.argv.includes('--down')) return down();
  if (existsSync(STATE)) {
    console.log('a kept demo is still running; tearing it down first');
    await down();
  }
  rmSync(DEMO_DIR, { recursive: true, force: true });
  mkdirSync(DEMO_DIR, { recursive: true });

  step('1. A real control plane: etcd, kube-apiserver, kube-controller-manager');
  // Raven's own gateway-pickup Pods serve the Gateway CRD's conversion webhook.
  const cluster = await startCluster({ dir: join(DEMO_DIR, 'cluster'), detached: keep, webhook: false });
  let kept = false;
  try {
    step('2. The cluster in a box, on real nodes: kubelet, containerd (CNI bridge), kube-proxy on seven nodes in four network domains; kube-scheduler. Raven installed from its own images, as the README says: images imported into each containerd, PSK Secret, node labels, kubectl apply --server-side -k k8s/overlays/box, the Gateways');
    const rb = await RavenBox.up({
      dir: join(DEMO_DIR, 'box'), cluster: cluster.info(), realNodes: true, topology: realWalkthroughTopology(), detached: keep,
      deploy: { log: (line) => console.log(`   ${line}`) },
    });
    try {
      if (!(await realNodesDemo(cluster.info(), rb))) process.exitCode = 1;
      if (keep) {
        writeFileSync(STATE, JSON.stringify({ pids: rb.pickup ? [rb.pickup.proc.pid] : [] }, null, 2));
        kept = true;
        const node = rb.box.node(HZ_2);
        step('Kept running');
        console.log(`kubectl:       KUBECONFIG=${join(DEMO_DIR, 'cluster/kubeconfig')} kubectl get pods -A -o wide   (npm run kubectl -- ... works too)`);
        console.log(`enter a node:  ip netns exec ${node.netns} bash`);
        console.log(`node logs:     ${node.logDir}/{kubelet,containerd,kube-proxy}.log`);
        console.log('Raven logs:    kubectl -n kube-system logs -l app.kubernetes.io/part-of=raven --prefix');
        console.log('tear down:     npm run demo -- --down');
      }
    } finally {
      if (!kept) {
        step('Tearing down');
        await rb.down();
      }
    }
  } finally {
    if (!kept) await cluster.destroy();
  }
  if (kept) process.exit(process.exitCode ?? 0);
}

/**
 * The walkthrough on real nodes, command by command: nodes, the busybox Deployment, the pod ping through `kubectl exec`
 * with tcpdump on the gateways' tunnels, the pod matrix, and section 2.3 on two nodes that share an InternalIP.
 */
async function realNodesDemo(cluster: ClusterInfo, rb: RavenBox): Promise<boolean> {
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
  const shown = async (args: string[], input?: string) => {
    console.log(`${bold(`$ kubectl ${args.join(' ')}`)}\n${(await k(args, input)).trimEnd()}`);
  };
  {
    console.log(rb.box.describe());
    console.log('waiting for the election, the WireGuard keys, the tunnels and the L7 proxy ...');
    await rb.waitConverged(120_000);
    const edge = rb.box.nodes.filter((n) => n.domain !== 'cloud').map((n) => n.name);
    await waitFor('the apiserver reaching every edge kubelet', async () => (await Promise.all(edge.map((n) => k(['get', '--raw', `/api/v1/nodes/${n}/proxy/healthz`]).catch(() => '')))).every((a) => a === 'ok'), 90_000, 500);
    await shown(['get', 'nodes', '-o', 'wide']);
    const system = await k(['-n', 'kube-system', 'get', 'pod', '-o', 'wide']);
    console.log(`${bold('$ kubectl get pod -n kube-system -o wide | grep raven')}\n${system.split('\n').filter((l) => /^NAME|raven/.test(l)).join('\n')}`);
    await shown(['get', 'gateways']);

    step('3. Walkthrough 2.2: the busybox Deployment on the edge workers');
    await shown(['apply', '-f', join(WORKSPACE_ROOT, 'k8s/examples/walkthrough/busybox.yaml')]);
    const busy = await runningPods(cluster.kubeconfig, 'app=busy-box', 4);
    await shown(['get', 'pod', '-o', 'wide']);
    const domainOf = (node: string) => rb.box.node(node).domain;
    const hz = busy.find((p) => domainOf(p.node) === 'hangzhou');
    const qd = busy.find((p) => domainOf(p.node) === 'qingdao');
    await k(['apply', '-f', '-'], JSON.stringify(probeDaemonSet('probe', false)));
    const probes = await runningPods(cluster.kubeconfig, 'app=probe', rb.box.nodes.length);
    const from = hz ?? probes.find((p) => domainOf(p.node) === 'hangzhou')!;
    const to = qd ?? probes.find((p) => domainOf(p.node) === 'qingdao')!;

    step(`4. kubectl exec into a hangzhou pod (${from.node}) and ping a qingdao pod (${to.ip}); tcpdump on the gateways' tunnels`);
    const tunnelOf = (name: string) => rb.box.node(name);
    const captures = await Promise.all([HZ_GW, CLOUD_GW, QD_GW].map((at) => rb.box.capture({ at: tunnelOf(at), iface: 'raven-wg0', filter: `icmp and host ${to.ip}`, count: at === CLOUD_GW ? 4 : 2, timeoutMs: 6_000 })));
    await shown(['exec', from.name, '--', 'ping', '-c', '4', to.ip]);
    const [hzSeen = [], cloudSeen = [], qdSeen = []] = await Promise.all(captures.map((c) => c.done));
    console.log(`${bold(`${HZ_GW} (hangzhou gateway) raven-wg0:`)}\n  ${hzSeen.join('\n  ')}`);
    console.log(`${bold(`${CLOUD_GW} (cloud gateway: relays NAT to NAT) raven-wg0:`)}\n  ${cloudSeen.join('\n  ')}`);
    console.log(`${bold(`${QD_GW} (qingdao gateway) raven-wg0:`)}\n  ${qdSeen.join('\n  ')}`);

    step('5. The pod matrix: every pod to every pod of the other Gateways\' domains (kubectl exec ... ping)');
    const matrix = await podMatrixFailures(cluster.kubeconfig, probes, domainOf);
    console.log(bold(matrix.failures.length === 0 ? `all ${matrix.pairs} pod pairs reachable` : `${matrix.failures.length} of ${matrix.pairs} pairs failed:\n  ${matrix.failures.join('\n  ')}`));

    step(`6. Walkthrough 2.3: ${HZ_GW} (hangzhou) and ${LONE} (in no Gateway) both have InternalIP ${CONFLICTING_IP}; kubectl reaches each through the L7 proxy`);
    let ok = matrix.failures.length === 0;
    for (const node of [HZ_GW, LONE]) {
      const pod = probes.find((p) => p.node === node)!;
      const exec = await k(['exec', '-i', pod.name, '--', 'sh'], 'echo hello word\necho "I run on $NODE_NAME"\n');
      const logs = await k(['logs', pod.name, '--tail=1']);
      const metrics = (await k(['get', '--raw', `/api/v1/nodes/${node}/proxy/metrics`])).split('\n').find((l) => l.startsWith('kubelet_node_name')) ?? '';
      console.log(`${bold(`$ kubectl exec -it ${pod.name} -- sh`)}   (on ${node})\n${exec.trimEnd()}`);
      console.log(`${bold(`$ kubectl logs ${pod.name} --tail=1`)}\n${logs.trimEnd()}`);
      console.log(`${bold(`$ kubectl get --raw /api/v1/nodes/${node}/proxy/metrics | grep kubelet_node_name`)}\n${metrics}`);
      ok &&= exec === `hello word\nI run on ${node}\n` && logs === `node=${node}\n` && metrics.includes(`node="${node}"`);
    }
    await shown(['-n', 'kube-system', 'get', 'configmap', 'edge-tunnel-nodes', '-o', 'jsonpath={.data.tunnel-nodes}']);
    console.log(bold(ok ? '\nevery command reached the right node' : '\nsome commands failed or reached the wrong node'));
    return ok;
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
