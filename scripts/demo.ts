// npm run demo [-- --keep | --down]: the walkthrough made real on one machine.
// A real control plane, the three network domains of the walkthrough (cloud, hangzhou and qingdao behind NAT) as
// network namespaces, gateway-pickup, and a tunnel-agent in every node. Then the walkthrough's checks.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PORTS, PROXY_SERVICE_ACCOUNTS } from '@raven/api-types';
import { issueCertificate } from '@raven/pki';
import {
  Box, ControlPlane, INSIDE_APISERVER, RavenBox, WORKSPACE_ROOT, adminClient, appCommand, boundKubeconfig, clusterCa,
  formatConnectivity, kubectl, pidAlive, startApp, startCluster, startKubelet, waitFor, type BoxHost, type BoxNode, type BoxTopology,
  type ClusterInfo, type ConnectivityPair, type Fixture, type ManagedProcess,
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

    if (!keep) {
      await rb.down();
      rb = undefined;
      const l7ok = await l7Demo(cluster.info());
      if (!l7ok) process.exitCode = 1;
    }

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
 * Walkthrough 2.3: edge IPs that conflict across domains, reached from the cloud by node name through the L7 proxy.
 * A second box: the same nodes, but qingdao's LAN reuses hangzhou's addresses (172.16.2.103 and .104 twice).
 */
async function l7Demo(cluster: ClusterInfo): Promise<boolean> {
  step('8. Walkthrough 2.3 (L7 proxy): a new box where qingdao\'s nodes have the SAME IPs as hangzhou\'s');
  const walk = (name: string, ip: string, podCIDR: string, publicIP?: string) => ({ name, internalIP: ip, podCIDR, ...(publicIP ? { publicIP } : {}) });
  const topology: BoxTopology = {
    domains: [
      { name: 'cloud', gateway: 'gw-cloud', lan: '192.168.0.0/24', wanIP: '198.18.0.10', nodes: [walk(CLOUD_GW, '192.168.0.195', '10.224.0.128/26', '198.18.0.11'), walk('izwz9ey0js5z7mornclpd6z', '192.168.0.196', '10.224.0.0/26')] },
      { name: 'hangzhou', gateway: 'gw-hangzhou', lan: '172.16.2.0/24', wanIP: '198.18.0.21', nodes: [walk(HZ_GW, '172.16.2.103', '10.224.1.128/26'), walk(HZ_2, '172.16.2.104', '10.224.1.0/26')] },
      { name: 'qingdao', gateway: 'gw-qingdao', lan: '172.16.2.0/24', wanIP: '198.18.0.31', nodes: [walk(QD_1, '172.16.2.103', '10.224.2.128/26'), walk(QD_GW, '172.16.2.104', '10.224.2.0/26')] },
    ],
  };
  const box = await Box.up({ dir: join(DEMO_DIR, 'box-l7'), cluster, topology });
  const kube = await adminClient(cluster);
  const procs: ManagedProcess[] = [];
  const fixtures: Fixture[] = [];
  const pods: string[] = [];
  let pickup: Awaited<ReturnType<typeof startApp>> | undefined;
  try {
    console.log(box.describe());
    pickup = await startApp('gateway-pickup', {
      access: cluster, serviceAccount: 'raven-gateway-pickup', name: 'gateway-pickup-l7',
      args: ['--controllers=gatewaypickup,gatewaydns,gatewayinternalservice,csrapprover', '--leader-elect=false'],
    });
    const ca = await clusterCa(cluster);
    const kubeletDir = join(DEMO_DIR, 'kubelets');
    mkdirSync(kubeletDir, { recursive: true });
    for (const n of box.nodes.filter((x) => x.domain !== 'cloud')) {
      fixtures.push(await startKubelet(ca, kubeletDir, { node: n.name, host: '0.0.0.0', ips: [n.internalIP], httpsPort: PORTS.kubeletSecure, httpPort: PORTS.kubeletReadOnly, wrap: [...n.wrap] }));
    }
    const spawn = async (n: BoxNode, app: 'proxy-server' | 'proxy-client', sa: string) => {
      const { kubeconfig, pod } = await boundKubeconfig(kube, { server: INSIDE_APISERVER, caPem: cluster.caPem }, sa, n.name, kubeletDir);
      pods.push(pod);
      const { command, args } = appCommand(app);
      // The demo also calls the plain-HTTP front end, which cannot authenticate callers (an explicit insecure flag).
      const extra = app === 'proxy-server' ? ['--insecure-http-frontend'] : [];
      procs.push(n.spawn(command, [...args, `--kubeconfig=${kubeconfig}`, `--node-name=${n.name}`, ...extra], { name: app }));
    };
    await spawn(box.node(CLOUD_GW), 'proxy-server', PROXY_SERVICE_ACCOUNTS.server);
    await spawn(box.node(HZ_GW), 'proxy-client', PROXY_SERVICE_ACCOUNTS.client);
    await spawn(box.node(QD_1), 'proxy-client', PROXY_SERVICE_ACCOUNTS.client);
    console.log('proxy-server on the cloud gateway, a proxy-client on each edge Gateway\'s proxy endpoint; certificates from the CSR API, approved by gateway-pickup');
    const cloud = box.node(CLOUD_GW);
    // HTTPS callers present a client certificate from the cluster CA (as the apiserver's kubelet client does) with RBAC on nodes/proxy.
    const caller = await issueCertificate(ca, { commonName: 'raven-demo-caller', organizations: ['system:masters'], usages: ['client'] });
    const call = async (tls: boolean, host: string, path: string): Promise<{ status: number; body: string }> => {
      const script = `const m = await import(${JSON.stringify(tls ? 'node:https' : 'node:http')});
        const req = m.request({ host: '192.168.0.195', port: ${tls ? PORTS.proxyInternalSecure : PORTS.proxyInternalInsecure}, path: ${JSON.stringify(path)}, headers: { host: ${JSON.stringify(host)} }, rejectUnauthorized: false, cert: ${JSON.stringify(caller.certPem)}, key: ${JSON.stringify(caller.keyPem)} }, (res) => {
          let body = ''; res.on('data', (d) => (body += d)); res.on('end', () => { console.log(JSON.stringify({ status: res.statusCode, body })); process.exit(0); }); });
        req.on('error', (e) => { console.log(JSON.stringify({ status: 0, body: e.message })); process.exit(0); }); req.end();`;
      const { stdout } = await cloud.exec(process.execPath, ['--input-type=module', '-e', script]);
      return JSON.parse(stdout.trim().split('\n').pop()!) as { status: number; body: string };
    };
    await waitFor('the proxies to connect and serve', async () => (await call(false, `${HZ_2}:${PORTS.kubeletReadOnly}`, '/healthz')).status === 200
      && (await call(false, `${QD_GW}:${PORTS.kubeletReadOnly}`, '/healthz')).status === 200, 90_000, 500);

    step('   From the cloud, by node name, through x-raven-proxy-internal-svc\'s targets (HTTP 10264, HTTPS 10263)');
    let ok = true;
    for (const [node, ip] of [[HZ_2, '172.16.2.104'], [QD_GW, '172.16.2.104'], [HZ_GW, '172.16.2.103'], [QD_1, '172.16.2.103']] as const) {
      const viaHttp = await call(false, `${node}:${PORTS.kubeletReadOnly}`, '/whoami');
      const viaHttps = await call(true, `${node}:${PORTS.kubeletSecure}`, '/metrics');
      const answered = (JSON.parse(viaHttp.body) as { node?: string }).node;
      const right = viaHttp.status === 200 && answered === node && viaHttps.status === 200 && viaHttps.body.includes(`node="${node}"`);
      ok &&= right;
      console.log(`  ${node} (InternalIP ${ip}): GET :${PORTS.kubeletReadOnly}/whoami → ${viaHttp.status}, answered by ${answered}; GET :${PORTS.kubeletSecure}/metrics (TLS verified to the node) → ${viaHttps.status} ${right ? 'ok' : 'WRONG NODE'}`);
    }
    const refused = await call(false, `${HZ_2}:22`, '/');
    console.log(`  a port that no Gateway exposes (:22) → ${refused.status} (not an open proxy)`);
    const ambiguous = await call(false, `172.16.2.104:${PORTS.kubeletReadOnly}`, '/whoami');
    console.log(`  the bare IP 172.16.2.104 (two nodes have it) → ${ambiguous.status}: ${ambiguous.body.trim().slice(0, 100)}`);
    step('   kubectl -n kube-system get configmap edge-tunnel-nodes (the DNS records cloud components resolve node names with)');
    console.log(await kubectl(cluster.kubeconfig, ['-n', 'kube-system', 'get', 'configmap', 'edge-tunnel-nodes', '-o', 'jsonpath={.data.tunnel-nodes}']));
    console.log(bold(ok ? '\nevery node answered by name, despite the conflicting IPs' : '\nsome requests reached the wrong node or failed'));
    return ok;
  } finally {
    for (const p of procs) await p.stop(2_000).catch(() => undefined);
    await Promise.all(fixtures.map((f) => f.stop()));
    await pickup?.stop();
    for (const pod of pods) await kube.delete({ group: '', version: 'v1', plural: 'pods', namespaced: true }, { namespace: 'kube-system', name: pod }).catch(() => undefined);
    kube.close();
    await box.down();
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
