// npm run demo [-- --keep | --down]: the walkthrough made real on one machine.
// A real control plane, the three network domains of the walkthrough (cloud, hangzhou and qingdao behind NAT) as
// network namespaces, gateway-pickup, and a tunnel-agent in every node. Then the walkthrough's checks.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  Box, ControlPlane, RavenBox, WORKSPACE_ROOT, formatConnectivity, kubectl, pidAlive, startCluster, type BoxHost, type ConnectivityPair,
} from '@raven/testbed';

const DEMO_DIR = join(WORKSPACE_ROOT, '.demo');
const STATE = join(DEMO_DIR, 'demo.json');
const bold = (s: string) => `\x1b[1m${s}\x1b[0m`;
const step = (title: string) => console.log(`\n${bold(`== ${title}`)}`);

const [HZ_GW, HZ_2, QD_1, QD_GW, CLOUD_GW] = ['izbp15inok0kbfkg3in52rz', 'izbp15inok0kbfkg3in52sz', 'izm5eb24dmjfimuaybpnqzz', 'izm5eb24dmjfimuaybpnr0z', 'izwz9dohcv74iegqecp4axz'];

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

    if (keep) {
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

async function showPing(from: BoxHost, to: BoxHost): Promise<void> {
  const { stdout } = await from.exec('ping', ['-c', '4', '-i', '0.2', to.ip]).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? String(err) }));
  console.log(stdout.trim().split('\n').map((l) => `  ${l}`).join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
