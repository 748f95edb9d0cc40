// npm run demo [-- --keep | --down]: the walkthrough made real on one machine.
// A real control plane and the walkthrough's three network domains (cloud, hangzhou and qingdao behind NAT) as
// network namespaces whose nodes run real kubelets, containerd and kube-proxy, with gateway-pickup, a tunnel-agent,
// proxy-server or proxy-client in every node. Then the walkthrough's own kubectl commands.
// --keep keeps a box of namespaces without real nodes (a real-node box's image registry and the apiserver's hosts
// file live in the process that built it).
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Box, ControlPlane, CONFLICTING_IP, RavenBox, WALKTHROUGH_NODES, WORKSPACE_ROOT, formatConnectivity, kubectl, pidAlive, podMatrixFailures,
  probeDaemonSet, realWalkthroughTopology, runningPods, startCluster, waitFor, type BoxHost, type ClusterInfo, type ConnectivityPair,
} from '@raven/testbed';

const DEMO_DIR = join(WORKSPACE_ROOT, '.demo');
const STATE = join(DEMO_DIR, 'demo.json');
const bold = (s: string) => `\x1b[1m${s}\x1b[0m`;
const step = (title: string) => console.log(`\n${bold(`== ${title}`)}`);

const { hzGateway: HZ_GW, hzMember: HZ_2, qdMember: QD_1, qdGateway: QD_GW, cloudGateway: CLOUD_GW, lone: LONE } = WALKTHROUGH_NODES;

async function down(): Promise<void> {
  if (!existsSync(STATE)) {
    console.log('no demo is running');
    return;
  }
  const state = JSON.parse(readFileSync(STATE, 'utf8')) as { pids: number[] };
  for (const pid of state.pids) if (pidAlive(pid)) process.kill(pid, 'SIGTERM');
  await Box.downFromState(join(DEMO_DIR, 'box'));
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

  step('1. A real control plane: etcd, kube-apiserver, kube-controller-manager, and the Gateway CRD with its conversion webhook');
  const cluster = await startCluster({ dir: join(DEMO_DIR, 'cluster'), detached: keep });
  if (!keep) {
    try {
      if (!(await realNodesDemo(cluster.info()))) process.exitCode = 1;
    } finally {
      step('Tearing down');
      await cluster.destroy();
    }
    return;
  }
  const k = (...args: string[]) => kubectl(cluster.info().kubeconfig, args);
  let rb: RavenBox | undefined;
  try {
    step('2. The cluster in a box: three network domains, six nodes with a pod each, NAT routers, an "internet"');
    rb = await RavenBox.up({ dir: join(DEMO_DIR, 'box'), cluster: cluster.info(), detached: keep });
    console.log(rb.box.describe());
    step('   Applied the walkthrough manifests (k8s/examples/walkthrough): raven-cfg and three Gateways; labelled the nodes');
    console.log(await k('get', 'nodes', '-L', 'raven.openyurt.io/gateway', '-o', 'wide'));
    console.log('waiting for the election, the WireGuard keys and the tunnels ...');
    await rb.waitConverged(90_000);

    step('3. kubectl get gateways');
    console.log(await k('get', 'gateways'));
    step('   kubectl get gateway gw-hangzhou -o yaml');
    console.log(await k('get', 'gateway', 'gw-hangzhou', '-o', 'yaml'));

    const node = (name: string) => rb!.box.node(name);
    step(`4. Walkthrough 2.2: a pod in hangzhou (${node(HZ_2).podIP}) pings a pod in qingdao (${node(QD_1).podIP})`);
    await showPing(node(HZ_2).pod, node(QD_1).pod);
    step(`   A non-gateway node in hangzhou (${node(HZ_2).internalIP}) pings a non-gateway node in qingdao (${node(QD_1).internalIP})`);
    await showPing(node(HZ_2), node(QD_1));

    step('5. Where the packets went (tcpdump while pinging): hangzhou gateway raven0, cloud gateway raven-wg0 (the NAT-to-NAT relay), qingdao node raven0');
    const captures = await Promise.all([
      rb.box.capture({ at: node(HZ_GW), iface: 'raven0', filter: 'icmp', count: 2, timeoutMs: 4_000 }),
      rb.box.capture({ at: node(CLOUD_GW), iface: 'raven-wg0', filter: 'icmp', count: 4, timeoutMs: 4_000 }),
      rb.box.capture({ at: node(QD_GW), iface: 'raven0', filter: 'icmp', count: 2, timeoutMs: 4_000 }),
    ]);
    await rb.box.ping({ from: node(HZ_2), to: node(QD_1), count: 2 });
    const [hz = [], relay = [], qd = []] = await Promise.all(captures.map((c) => c.done));
    console.log(`${bold(`${HZ_GW} (hangzhou gateway) raven0:`)}\n  ${hz.join('\n  ')}`);
    console.log(`${bold(`${CLOUD_GW} (cloud gateway, relay) raven-wg0:`)}\n  ${relay.join('\n  ')}`);
    console.log(`${bold(`${QD_GW} (qingdao gateway) raven0:`)}\n  ${qd.join('\n  ')}`);

    step('6. Cross-domain connectivity matrix (every pod to every pod, every node to the nodes of other domains)');
    const nodes = rb.box.nodes;
    const pairs: ConnectivityPair[] = [
      ...nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => ({ from: a.pod as BoxHost, to: b.pod as BoxHost, expect: true }))),
      ...nodes.flatMap((a) => nodes.filter((b) => b.domain !== a.domain).map((b) => ({ from: a as BoxHost, to: b as BoxHost, expect: true }))),
    ];
    const rows = await rb.box.connectivityMatrix(pairs, { count: 3 });
    console.log(formatConnectivity(rows));
    const failed = rows.filter((r) => !r.reachable || r.lossPercent > 0);
    console.log(bold(failed.length === 0 ? `all ${rows.length} pairs reachable with 0% loss` : `${failed.length} of ${rows.length} pairs failed`));
    step('7. Peer reachability and RTT that each gateway reports in its status (status.connections)');
    console.log(await k('get', 'gateways', '-o', 'custom-columns=GATEWAY:.metadata.name,PEERS:.status.connections[*].gateway,STATUS:.status.connections[*].status,RTT:.status.connections[*].latencyRTT.average,RELAYED-VIA:.status.connections[*].relayedVia'));
    if (failed.length > 0) process.exitCode = 1;

    if (keep && rb) {
      const pids = [rb.pickup.proc.pid, ...[...rb.agents.values()].map((p) => p.pid)];
      writeFileSync(STATE, JSON.stringify({ pids }, null, 2));
      step('Kept running');
      console.log(`kubectl:       ${join(DEMO_DIR, 'cluster/kubeconfig')}  (npm run kubectl works too: KUBECONFIG=${join(DEMO_DIR, 'cluster/kubeconfig')})`);
      console.log(`enter a node:  ip netns exec ${node(HZ_2).netns} bash        (its pod: ip netns exec ${node(HZ_2).podNetns} bash)`);
      console.log(`agent logs:    ${node(HZ_GW).logDir}/tunnel-agent.log`);
      console.log('tear down:     npm run demo -- --down');
      process.exit(process.exitCode ?? 0);
    }
  } finally {
    if (!keep) {
      step('Tearing down');
      await rb?.down();
      await cluster.destroy();
    }
  }
}

/**
 * The walkthrough on real nodes, command by command: nodes, the busybox Deployment, the pod ping through `kubectl exec`
 * with tcpdump on the gateways' tunnels, the pod matrix, and section 2.3 on two nodes that share an InternalIP.
 */
async function realNodesDemo(cluster: ClusterInfo): Promise<boolean> {
  const k = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
  const shown = async (args: string[], input?: string) => {
    console.log(`${bold(`$ kubectl ${args.join(' ')}`)}\n${(await k(args, input)).trimEnd()}`);
  };
  step('2. The cluster in a box, on real nodes: kubelet, containerd (CNI bridge), kube-proxy on seven nodes in four network domains; kube-scheduler; raven-proxy-dns (CoreDNS)');
  const rb = await RavenBox.up({ dir: join(DEMO_DIR, 'box'), cluster, realNodes: true, topology: realWalkthroughTopology() });
  try {
    console.log(rb.box.describe());
    console.log('waiting for the election, the WireGuard keys, the tunnels and the L7 proxy ...');
    await rb.waitConverged(120_000);
    const edge = rb.box.nodes.filter((n) => n.domain !== 'cloud').map((n) => n.name);
    await waitFor('the apiserver reaching every edge kubelet', async () => (await Promise.all(edge.map((n) => k(['get', '--raw', `/api/v1/nodes/${n}/proxy/healthz`]).catch(() => '')))).every((a) => a === 'ok'), 90_000, 500);
    await shown(['get', 'nodes', '-o', 'wide']);
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
  } finally {
    await rb.down();
  }
}

async function showPing(from: BoxHost, to: BoxHost): Promise<void> {
  const { stdout } = await from.exec('ping', ['-c', '4', '-i', '0.2', to.ip]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err) }));
  console.log(stdout.trim().split('\n').map((l) => `  ${l}`).join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
