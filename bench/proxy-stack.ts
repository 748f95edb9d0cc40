// The L7 proxy stack the benchmarks run against: a control plane, proxy-server and proxy-client (ours) and
// konnectivity, with the routes a request can take through them. Shared by `bench proxy` and its soak.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request, type ClientRequestArgs } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { LABELS, PROXY_SERVICE_ACCOUNTS, SYSTEM_NAMESPACE, proxyClientCommonName, servingCommonName } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { issueCertificate, loadCA, type CertificateAuthority } from '@raven/pki';
import {
  WORKSPACE_ROOT, sendConnect, adminClient, binaryPath, freePort, konnectivityPort, registerNode, startApp, startCluster, waitFor, writeKubeconfig, type AppProcess, type Cluster,
} from '@raven/testbed';

const ns = SYSTEM_NAMESPACE;

export const IPS = { cloud: '127.0.0.91', edge: '127.0.0.92' };
export const NAMES = { cloud: 'bench-cloud', edge: 'bench-edge', gwCloud: 'bench-gw-cloud', gwEdge: 'bench-gw-edge' };

export interface ProxyStack {
  cluster: Cluster;
  kube: KubeClient;
  dir: string;
  ports: { http: number; https: number; tunnel: number; feHttp: number; feHttps: number };
  server: AppProcess;
  client: AppProcess;
  target: ChildProcess;
  konnectivity?: { uds: string; server: ChildProcess; agent: ChildProcess };
  stop(): Promise<void>;
}

function spawnLogged(dir: string, name: string, command: string, args: string[]): ChildProcess {
  const child = spawn(command, args, { cwd: WORKSPACE_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const append = (d: Buffer) => {
    out += d.toString();
    if (out.length > 1_000_000) out = out.slice(-100_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  child.once('exit', () => writeFileSync(join(dir, `${name}.log`), out));
  process.once('exit', () => child.kill('SIGKILL'));
  Object.assign(child, { output: () => out });
  return child;
}

const output = (child: ChildProcess) => (child as ChildProcess & { output(): string }).output();

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await once(child, 'exit');
}

async function boundKubeconfig(kube: KubeClient, cluster: Cluster, sa: string, node: string, dir: string): Promise<string> {
  const pod = `${sa}-${node}`;
  const created = await kube.create<{ metadata: { uid: string } }>(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns }, spec: { nodeName: node, serviceAccountName: sa, containers: [{ name: 'main', image: `raven/${sa}` }] },
  });
  const review = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${sa}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod, uid: created.metadata.uid } } },
  });
  return writeKubeconfig(join(dir, `${pod}.kubeconfig`), cluster.info().server, cluster.info().caPem, { token: review.status.token });
}

/**
 * A control plane, gateway-pickup, our proxy-server (cloud) and proxy-client (edge) as bundles with their own
 * ServiceAccounts, a kubelet-like target on the edge node, and optionally konnectivity's server and agent beside them.
 */
export async function startProxyStack(opts: { konnectivity: boolean; serverArgs?: string[] }): Promise<ProxyStack> {
  const dir = mkdtempSync(join(tmpdir(), 'raven-bench-proxy-'));
  const cluster = await startCluster({ dir: join(dir, 'cluster') });
  const undo: Array<() => Promise<unknown>> = [() => cluster.destroy()];
  try {
    return await buildStack(opts, dir, cluster, undo);
  } catch (err) {
    for (const step of undo.reverse()) await step().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
}

async function buildStack(opts: { konnectivity: boolean; serverArgs?: string[] }, dir: string, cluster: Cluster, undo: Array<() => Promise<unknown>>): Promise<ProxyStack> {
  const kube = await adminClient(cluster.info());
  undo.push(async () => kube.close());
  const ca: CertificateAuthority = await loadCA({ certPem: readFileSync(cluster.info().caCertFile, 'utf8'), keyPem: readFileSync(cluster.info().caKeyFile, 'utf8') });
  const ports = { http: await freePort(), https: await freePort(), tunnel: await freePort(), feHttp: await freePort(), feHttps: await freePort() };
  await registerNode(kube, { name: NAMES.cloud, internalIP: IPS.cloud, labels: { [LABELS.gateway]: NAMES.gwCloud } });
  await registerNode(kube, { name: NAMES.edge, internalIP: IPS.edge, labels: { [LABELS.gateway]: NAMES.gwEdge } });
  await kube.create(RESOURCES.configMaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'raven-cfg', namespace: ns }, data: { 'enable-l3-tunnel': 'false', 'enable-l7-proxy': 'true' } });
  const gateway = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  await gateway(NAMES.gwCloud, {
    exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: String(ports.http), proxyHTTPSPort: String(ports.https) }, tunnelConfig: { Replicas: 0 },
    endpoints: [{ nodeName: NAMES.cloud, type: 'proxy', port: ports.tunnel, publicIP: IPS.cloud }],
  });
  await gateway(NAMES.gwEdge, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: NAMES.edge, type: 'proxy', underNAT: true }] });

  const pickup = await startApp('gateway-pickup', {
    access: cluster.info(), serviceAccount: 'raven-gateway-pickup', name: 'pickup',
    args: ['--controllers=gatewaypickup,csrapprover', '--leader-elect=false', '--log-level=warn'],
  });
  undo.push(() => pickup.stop());

  const kubelet = await issueCertificate(ca, { commonName: servingCommonName(NAMES.edge), organizations: ['system:nodes'], dnsNames: [NAMES.edge], ipAddresses: [IPS.edge], usages: ['server'] });
  writeFileSync(join(dir, 'kubelet.crt'), kubelet.certPem);
  writeFileSync(join(dir, 'kubelet.key'), kubelet.keyPem);
  const target = spawnLogged(dir, 'target', process.execPath, ['--import', 'tsx', join(WORKSPACE_ROOT, 'libs/testbed/fixtures/kubelet.ts'), JSON.stringify({
    node: NAMES.edge, host: IPS.edge, httpsPort: ports.https, httpPort: ports.http, certFile: join(dir, 'kubelet.crt'), keyFile: join(dir, 'kubelet.key'),
  })]);
  undo.push(() => stopChild(target));
  await waitFor('the target', async () => output(target).includes('"ready":true'), 20_000, 50);

  const server = await startApp('proxy-server', {
    access: cluster.info(), serviceAccount: PROXY_SERVICE_ACCOUNTS.server, name: 'proxy-server', kubeconfig: await boundKubeconfig(kube, cluster, PROXY_SERVICE_ACCOUNTS.server, NAMES.cloud, dir),
    args: [`--node-name=${NAMES.cloud}`, `--bind-address=${IPS.cloud}`, `--tunnel-port=${ports.tunnel}`, `--http-port=${ports.feHttp}`, `--https-port=${ports.feHttps}`, '--insecure-http-frontend', '--insecure-allow-loopback-targets', '--log-level=warn', ...(opts.serverArgs ?? [])],
  });
  undo.push(() => server.stop());
  const client = await startApp('proxy-client', {
    access: cluster.info(), serviceAccount: PROXY_SERVICE_ACCOUNTS.client, name: 'proxy-client', kubeconfig: await boundKubeconfig(kube, cluster, PROXY_SERVICE_ACCOUNTS.client, NAMES.edge, dir),
    args: [`--node-name=${NAMES.edge}`, '--insecure-allow-loopback-targets', '--log-level=warn'],
  });
  undo.push(() => client.stop());
  await waitFor('the proxy-client connected', async () => /raven_proxy_server_connected_clients 1/.test(await server.metrics()), 20_000, 100);

  let konnectivity: ProxyStack['konnectivity'];
  if (opts.konnectivity) {
    const uds = join(dir, 'konnectivity.sock');
    const serving = await issueCertificate(ca, { commonName: 'konnectivity-server', ipAddresses: ['127.0.0.1'], usages: ['server'] });
    const agentCert = await issueCertificate(ca, { commonName: proxyClientCommonName(NAMES.edge), usages: ['client'] });
    for (const [file, content] of [['konn.crt', serving.certPem], ['konn.key', serving.keyPem], ['agent.crt', agentCert.certPem], ['agent.key', agentCert.keyPem]]) writeFileSync(join(dir, file!), content!);
    const agentPort = await konnectivityPort();
    const konnServer = spawnLogged(dir, 'konnectivity-server', binaryPath('konnectivity-server'), [
      '--mode=http-connect', '--proxy-strategies=destHost', '--server-id=konn', '--server-count=1', '-v=0', `--uds-name=${uds}`, '--delete-existing-uds-file',
      '--server-port=0', '--agent-bind-address=127.0.0.1', `--agent-port=${agentPort}`,
      `--cluster-cert=${join(dir, 'konn.crt')}`, `--cluster-key=${join(dir, 'konn.key')}`, `--cluster-ca-cert=${cluster.info().caCertFile}`,
      '--admin-bind-address=127.0.0.1', `--admin-port=${await konnectivityPort()}`, '--health-bind-address=127.0.0.1', `--health-port=${await konnectivityPort()}`,
    ]);
    undo.push(() => stopChild(konnServer));
    await waitFor('konnectivity-server', async () => readdirSync(dir).includes('konnectivity.sock'), 20_000, 100);
    const konnAgent = spawnLogged(dir, 'konnectivity-agent', binaryPath('konnectivity-agent'), [
      `--agent-id=${NAMES.edge}`, `--agent-identifiers=ipv4=${IPS.edge}`, '-v=0', '--proxy-server-host=127.0.0.1', `--proxy-server-port=${agentPort}`,
      `--ca-cert=${cluster.info().caCertFile}`, `--agent-cert=${join(dir, 'agent.crt')}`, `--agent-key=${join(dir, 'agent.key')}`,
      '--admin-bind-address=127.0.0.1', `--admin-server-port=${await konnectivityPort()}`, '--health-server-host=127.0.0.1', `--health-server-port=${await konnectivityPort()}`,
    ]);
    undo.push(() => stopChild(konnAgent));
    konnectivity = { uds, server: konnServer, agent: konnAgent };
    await waitFor('konnectivity carrying a request', async () => {
      const socket = await connectThrough(uds, `${IPS.edge}:${ports.http}`).catch(() => undefined);
      socket?.destroy();
      return !!socket;
    }, 20_000, 200);
  }

  return {
    cluster, kube, dir, ports, server, client, target, konnectivity,
    stop: async () => {
      for (const step of undo.reverse()) await step().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** An HTTP CONNECT tunnel through konnectivity's frontend (the way kube-apiserver uses it). */
async function connectThrough(uds: string, target: string): Promise<Socket> {
  const socket = netConnect(uds);
  socket.setNoDelay(true);
  await once(socket, 'connect');
  const statusLine = await sendConnect(socket, target);
  if (!/^HTTP\/\d\.\d 200/.test(statusLine)) {
    socket.destroy();
    throw new Error(`CONNECT ${target}: ${statusLine}`);
  }
  return socket;
}

/** Keep-alive connections that each start with a CONNECT through konnectivity. */
class ConnectAgent extends Agent {
  constructor(private readonly uds: string, private readonly target: string) {
    super({ keepAlive: true, maxSockets: Infinity });
  }

  override createConnection(_options: ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex {
    connectThrough(this.uds, this.target).then((s) => {
      callback?.(null, s);
      s.resume(); // node:http is reading it now; connectThrough paused it so nothing was lost before
    }, (err: Error) => callback?.(err, undefined as unknown as Duplex));
    return undefined as unknown as Duplex;
  }
}

export interface Route {
  name: string;
  agent: () => Agent;
  address: string;
  port: number;
  host: string;
}

export function routes(stack: ProxyStack): Route[] {
  const target = `${NAMES.edge}:${stack.ports.http}`;
  const list: Route[] = [
    { name: 'direct', agent: () => new Agent({ keepAlive: true, maxSockets: Infinity }), address: IPS.edge, port: stack.ports.http, host: target },
    { name: 'raven (ours)', agent: () => new Agent({ keepAlive: true, maxSockets: Infinity }), address: IPS.cloud, port: stack.ports.feHttp, host: target },
  ];
  const konn = stack.konnectivity;
  // The upstream agent dials the address it is given literally (it cannot resolve node names), so it gets the IP.
  if (konn) list.push({ name: 'konnectivity', agent: () => new ConnectAgent(konn.uds, `${IPS.edge}:${stack.ports.http}`), address: '127.0.0.1', port: 1, host: target });
  return list;
}

export function get(route: Route, agent: Agent, path: string): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const req = request({ agent, host: route.address, port: route.port, path, headers: { host: route.host } }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${route.name}: GET ${path} timed out`)));
    req.end();
  });
}

export function rssMB(pid: number): number {
  return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
