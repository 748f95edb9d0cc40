import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS, PROXY_CLIENT_HEALTH_PORT, PROXY_SERVICE_ACCOUNTS, PORTS, SERVICES, type Gateway } from '@raven/api-types';
import { KubeClient, RESOURCES } from '@raven/controller-kit';
import { issueCertificate } from '@raven/pki';
import {
  Box, INSIDE_APISERVER, WORKSPACE_ROOT, adminClient, appCommand, missingMonitoredMetrics, startApp, uniqueName, waitFor, writeKubeconfig,
  type AppProcess, type BoxNode, type BoxTopology, type ManagedProcess,
} from '@raven/testbed';
import { TSX_LOADER, clusterCa, deletePod, enableL7, ns, startKubelet, type Fixture } from './support/scenario.ts';

/**
 * The L7 proxy end to end in the cluster in a box: three edge domains behind NAT whose nodes share InternalIPs
 * (172.16.2.103 is hz-1, qd-1 and lone; 172.16.2.104 is hz-2 and qd-2), a cloud domain with two proxy-servers
 * (proxyConfig.Replicas 2), a proxy-client on each edge Gateway's elected node and on the node in no Gateway, and a
 * kubelet-like endpoint (HTTPS 10250, HTTP 10255) on every node. A third cloud proxy endpoint stands by. Calls come from a third cloud node, as a cloud
 * component's would; everything runs with its own ServiceAccount and certificates from the CSR API.
 */
const cluster = inject('cluster');
const sfx = uniqueName('x').split('-').slice(1).join('').slice(0, 8);
const n = {
  cloudA: `l7-cloud-a-${sfx}`, cloudB: `l7-cloud-b-${sfx}`, cloudC: `l7-cloud-c-${sfx}`, caller: `l7-caller-${sfx}`,
  hz1: `l7-hz-1-${sfx}`, hz2: `l7-hz-2-${sfx}`, qd1: `l7-qd-1-${sfx}`, qd2: `l7-qd-2-${sfx}`, lone: `l7-lone-${sfx}`,
};
const gw = { cloud: `l7-cloud-${sfx}`, hz: `l7-hz-${sfx}`, qd: `l7-qd-${sfx}` };
const CONFLICT = '172.16.2.103';
const topology: BoxTopology = {
  domains: [
    { name: 'cloud', gateway: gw.cloud, lan: '192.168.10.0/24', wanIP: '198.18.0.10', nodes: [
      { name: n.cloudA, internalIP: '192.168.10.11', podCIDR: '10.224.60.0/26', publicIP: '198.18.0.11' },
      { name: n.cloudB, internalIP: '192.168.10.12', podCIDR: '10.224.60.64/26', publicIP: '198.18.0.12' },
      { name: n.caller, internalIP: '192.168.10.13', podCIDR: '10.224.60.128/26' },
      { name: n.cloudC, internalIP: '192.168.10.14', podCIDR: '10.224.60.192/26', publicIP: '198.18.0.14' },
    ] },
    { name: 'hz', gateway: gw.hz, lan: '172.16.2.0/24', wanIP: '198.18.0.21', nodes: [
      { name: n.hz1, internalIP: CONFLICT, podCIDR: '10.224.61.0/26' }, { name: n.hz2, internalIP: '172.16.2.104', podCIDR: '10.224.61.64/26' },
    ] },
    { name: 'qd', gateway: gw.qd, lan: '172.16.2.0/24', wanIP: '198.18.0.31', nodes: [
      { name: n.qd1, internalIP: CONFLICT, podCIDR: '10.224.62.0/26' }, { name: n.qd2, internalIP: '172.16.2.104', podCIDR: '10.224.62.64/26' },
    ] },
    { name: 'lone', lan: '172.16.2.0/24', wanIP: '198.18.0.41', nodes: [{ name: n.lone, internalIP: CONFLICT, podCIDR: '10.224.63.0/26' }] },
  ],
};
const servers = [n.cloudA, n.cloudB] as const;
const serverIP = { [n.cloudA]: '192.168.10.11', [n.cloudB]: '192.168.10.12', [n.cloudC]: '192.168.10.14' } as Record<string, string>;

let kube: KubeClient;
let box: Box;
let pickup: AppProcess;
const dir = mkdtempSync(join(tmpdir(), 'raven-l7-e2e-'));
const fixtures: Fixture[] = [];
const procs = new Map<string, ManagedProcess>();
const pods: string[] = [];

/** A kubeconfig usable inside the box whose token is bound to a Pod on `node` (as a DaemonSet pod's is). */
async function boundInside(serviceAccount: string, node: string): Promise<string> {
  const pod = `${serviceAccount}-${node}`.slice(0, 63);
  const created = await kube.create<{ metadata: { uid: string } }>(RESOURCES.pods, {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: ns }, spec: { nodeName: node, serviceAccountName: serviceAccount, containers: [{ name: 'main', image: 'raven/proxy' }] },
  });
  pods.push(pod);
  const review = await kube.request<{ status: { token: string } }>('POST', `/api/v1/namespaces/${ns}/serviceaccounts/${serviceAccount}/token`, {
    body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { boundObjectRef: { kind: 'Pod', apiVersion: 'v1', name: pod, uid: created.metadata.uid } } },
  });
  return writeKubeconfig(join(dir, `${pod}.kubeconfig`), INSIDE_APISERVER, cluster.caPem, { token: review.status.token });
}

function spawnApp(node: BoxNode, app: 'proxy-server' | 'proxy-client', kubeconfig: string): ManagedProcess {
  const { command, args } = appCommand(app);
  const extra = app === 'proxy-server' ? ['--insecure-http-frontend'] : [];
  const proc = node.spawn(command, [...args, `--kubeconfig=${kubeconfig}`, `--node-name=${node.name}`, '--log-level=debug', ...extra], { name: app });
  procs.set(`${app}/${node.name}`, proc);
  return proc;
}

/** GET on an app's health server inside its node. */
async function health(node: BoxNode, port: number, path: string): Promise<{ status: number; body: string }> {
  const script = `fetch('http://127.0.0.1:${port}${path}').then(async (r) => process.stdout.write(r.status + '\\n' + await r.text()), (e) => process.stdout.write('0\\n' + e.message))`;
  const { stdout } = await node.exec(process.execPath, ['-e', script]);
  const [status, ...body] = stdout.split('\n');
  return { status: Number(status), body: body.join('\n') };
}

/** The HTTPS callers' client certificate (from the cluster CA, with RBAC on nodes/proxy), as the apiserver's would be. */
let caller: { cert: string; key: string } | undefined;

type Call = { identity?: { cert: string; key: string } | null; kind: 'get' | 'follow' | 'exec'; address: string; port: number; host: string; path: string; tls?: boolean; lines?: number; inputs?: string[]; headers?: Record<string, string> };
type Result = { status?: number | string; body?: string; lines?: string[]; stdout?: string[]; exitStatus?: string; error?: string; chunks?: number };

/** Runs calls from the caller node (in the cloud domain), as a cloud component would make them. */
async function probe(calls: Call[]): Promise<Result[]> {
  const { stdout } = await box.node(n.caller).exec(process.execPath, ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/proxy-server/test/fixtures/probe.ts'), JSON.stringify({ calls, identity: caller })]);
  return JSON.parse(stdout.trim().split('\n').pop()!) as Result[];
}

const frontEnd = (server: string, tls: boolean) => ({ address: serverIP[server]!, port: tls ? PORTS.proxyInternalSecure : PORTS.proxyInternalInsecure, tls });
const targetPort = (tls: boolean) => (tls ? PORTS.kubeletSecure : PORTS.kubeletReadOnly);

let restoreConfig: (() => Promise<void>) | undefined;

beforeAll(async () => {
  kube = await adminClient(cluster);
  box = await Box.up({ dir: join(dir, 'box'), cluster, topology, heartbeatIntervalMs: 2_000 });
  restoreConfig = await enableL7(kube);
  const create = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  // The walkthrough's cloud Gateway, with two proxy replicas out of three candidates.
  await create(gw.cloud, {
    exposeType: 'PublicIP', proxyConfig: { Replicas: 2, proxyHTTPPort: '10255,9445', proxyHTTPSPort: '10250,9100' }, tunnelConfig: { Replicas: 0 },
    endpoints: [[n.cloudA, '198.18.0.11'], [n.cloudB, '198.18.0.12'], [n.cloudC, '198.18.0.14']].map(([nodeName, publicIP]) => ({ nodeName, type: 'proxy', port: PORTS.proxyTunnel, underNAT: false, publicIP })),
  });
  await create(gw.hz, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: n.hz1, type: 'proxy', port: PORTS.proxyTunnel, underNAT: true }] });
  await create(gw.qd, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: n.qd1, type: 'proxy', port: PORTS.proxyTunnel, underNAT: true }] });
  pickup = await startApp('gateway-pickup', {
    access: cluster, serviceAccount: 'raven-gateway-pickup', name: 'gateway-pickup-l7-e2e',
    args: ['--controllers=gatewaypickup,gatewayinternalservice,csrapprover', '--leader-elect=false'],
  });

  const ca = await clusterCa(cluster);
  const pair = await issueCertificate(ca, { commonName: `l7-e2e-caller-${sfx}`, organizations: ['system:masters'], usages: ['client'] });
  caller = { cert: pair.certPem, key: pair.keyPem };
  for (const node of box.nodes) {
    fixtures.push(await startKubelet(ca, dir, { node: node.name, host: '0.0.0.0', ips: [node.internalIP], httpsPort: PORTS.kubeletSecure, httpPort: PORTS.kubeletReadOnly, wrap: [...node.wrap] }));
  }
  for (const s of [...servers, n.cloudC]) spawnApp(box.node(s), 'proxy-server', await boundInside(PROXY_SERVICE_ACCOUNTS.server, s));
  for (const c of [n.hz1, n.qd1, n.lone]) spawnApp(box.node(c), 'proxy-client', await boundInside(PROXY_SERVICE_ACCOUNTS.client, c));
  await waitFor('both proxy-servers active with three clients each', async () => {
    for (const s of servers) {
      const metrics = (await health(box.node(s), PORTS.proxyMetrics, '/metrics')).body;
      if (!/raven_proxy_server_active 1/.test(metrics) || !/raven_proxy_server_connected_clients 3/.test(metrics)) return false;
    }
    const spare = await health(box.node(n.cloudC), PORTS.proxyMetrics, '/metrics');
    return /raven_proxy_server_active 0/.test(spare.body) && (await health(box.node(n.cloudC), PORTS.proxyMetrics, '/readyz')).status === 200;
  }, 90_000, 500);
}, 300_000);

afterAll(async () => {
  for (const proc of procs.values()) await proc.stop(2_000).catch(() => undefined);
  await Promise.all(fixtures.map((f) => f.stop()));
  await pickup?.stop();
  await box?.down();
  for (const name of Object.values(gw)) await kube.delete(RESOURCES.gateways, { name }).catch(() => undefined);
  await restoreConfig?.();
  for (const pod of pods) await deletePod(kube, pod);
  kube?.close();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('conflicting InternalIPs across domains', () => {
  it('a request by node name reaches the right node every time, through both front ends of both replicas', async () => {
    const calls: Call[] = [];
    for (let round = 0; round < 3; round++) {
      for (const server of servers) {
        for (const tls of [false, true]) {
          for (const node of [n.hz1, n.qd1, n.lone, n.hz2, n.qd2]) calls.push({ kind: 'get', ...frontEnd(server, tls), host: `${node}:${targetPort(tls)}`, path: '/whoami' });
        }
      }
    }
    const results = await probe(calls);
    const served = results.map((r) => (r.status === 200 ? (JSON.parse(r.body!) as { node: string }).node : `${r.status}: ${r.body ?? r.error}`));
    expect(served).toEqual(calls.map((c) => c.host.split(':')[0]));
  });

  it.each([false, true])('each of the four kinds of call works (tls=%s): followed containerLogs, exec over websocket, /metrics, plain GET', async (tls) => {
    const calls: Call[] = [];
    for (const node of [n.hz1, n.qd1, n.lone]) {
      const at = { ...frontEnd(n.cloudA, tls), host: `${node}:${targetPort(tls)}` };
      calls.push(
        { kind: 'follow', ...at, path: '/containerLogs/default/web/app?follow=true', lines: 5 },
        { kind: 'exec', ...at, path: '/exec/default/web/app?command=sh&stdin=true&stdout=true', inputs: ['echo hi'] },
        { kind: 'get', ...at, path: '/metrics' },
        { kind: 'get', ...at, path: '/healthz' },
      );
    }
    const results = await probe(calls);
    for (const [i, node] of [n.hz1, n.qd1, n.lone].entries()) {
      const [follow, exec, metrics, plain] = results.slice(i * 4, i * 4 + 4) as [Result, Result, Result, Result];
      expect(follow.lines?.length, JSON.stringify(follow)).toBe(5);
      expect(follow.lines!.every((l) => l.startsWith(`node=${node} `))).toBe(true);
      expect(exec.stdout).toEqual([`${node}: echo hi`, `${node}: stdin closed, bye`]);
      expect(exec.exitStatus).toBe('Success');
      expect(metrics.body).toContain(`kubelet_node_name{node="${node}"} 1`);
      expect(plain.body).toBe(`ok ${node}\n`);
    }
  });
});

describe('authorization', () => {
  it('refuses an ambiguous IP literal (409), a port that is not configured (403), and an address that is no node (404)', async () => {
    const at = frontEnd(n.cloudA, false);
    const [ambiguous, port, internet, unique] = await probe([
      { kind: 'get', ...at, host: `${CONFLICT}:10255`, path: '/whoami' },
      { kind: 'get', ...at, host: `${n.hz1}:22`, path: '/' },
      { kind: 'get', ...at, host: '198.18.0.1:10255', path: '/' },
      { kind: 'get', ...at, host: '192.168.10.13:10255', path: '/whoami' },
    ]) as [Result, Result, Result, Result];
    expect([ambiguous.status, ambiguous.body]).toEqual([409, expect.stringContaining('ambiguous')]);
    expect(port.status).toBe(403);
    expect(internet.status).toBe(404);
    // A unique IP literal is fine (the caller's own cloud node here, served directly).
    expect(JSON.parse(unique.body!)).toMatchObject({ node: n.caller });
  });

  it('an ambiguous IP still reaches the right node for a kubelet pod path (the pod names the node)', async () => {
    const pod = uniqueName('web');
    await kube.create(RESOURCES.pods, { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: 'default' }, spec: { nodeName: n.qd1, containers: [{ name: 'app', image: 'nginx' }] } });
    try {
      const [logs] = await probe([{ kind: 'get', ...frontEnd(n.cloudB, true), host: `${CONFLICT}:10250`, path: `/containerLogs/default/${pod}/app` }]) as [Result];
      expect(logs.status).toBe(200);
      expect(logs.body).toContain(`node=${n.qd1} pod=default/${pod}`);
    } finally {
      await kube.delete(RESOURCES.pods, { namespace: 'default', name: pod }).catch(() => undefined);
    }
  });

  it('each proxy-server exports what the shipped alerts and dashboard select', async () => {
    for (const s of servers) expect(missingMonitoredMetrics('proxy-server', (await health(box.node(s), PORTS.proxyMetrics, '/metrics')).body)).toEqual([]);
  });

  it('each proxy-client is admitted for its own domain only and dials nothing else', async () => {
    for (const c of [n.hz1, n.qd1, n.lone]) {
      const metrics = (await health(box.node(c), PROXY_CLIENT_HEALTH_PORT, '/metrics')).body;
      expect(metrics, c).toMatch(/raven_proxy_client_servers_connected 2/);
      expect(metrics).not.toMatch(/raven_proxy_client_dials_total\{result="refused"\} [1-9]/);
      expect(missingMonitoredMetrics('proxy-client', metrics)).toEqual([]);
    }
  });
});

describe('attacks with a compromised edge node\'s credentials (hz-2: its kubelet identity, its proxy-client ServiceAccount token)', () => {
  let kubelet: KubeClient;
  let kubeletIdentity: { cert: string; key: string };
  const publicIP: Record<string, string> = { [n.cloudA]: '198.18.0.11', [n.cloudB]: '198.18.0.12' };
  const whoamiVia = (server: string, node: string): Call => ({ kind: 'get', ...frontEnd(server, false), host: `${node}:${targetPort(false)}`, path: '/whoami' });
  const servedBy = (r: Result) => (r.status === 200 ? (JSON.parse(r.body!) as { node: string }).node : `${r.status}: ${r.body ?? r.error}`);

  beforeAll(async () => {
    // What the kubelet of hz-2 holds: a client certificate system:node:hz-2 (group system:nodes) from the cluster CA.
    const pair = await issueCertificate(await clusterCa(cluster), { commonName: `system:node:${n.hz2}`, organizations: ['system:nodes'], usages: ['client'] });
    kubeletIdentity = { cert: pair.certPem, key: pair.keyPem };
    const kubeconfig = writeKubeconfig(join(dir, 'hz2-kubelet.kubeconfig'), cluster.server, cluster.caPem, { clientCertPem: pair.certPem, clientKeyPem: pair.keyPem });
    kubelet = await KubeClient.load({ kubeconfig, userAgent: 'compromised-kubelet' });
  });
  afterAll(() => kubelet?.close());

  it('front-end exec: without a certificate the handshake fails, with its kubelet certificate 403; an authorized caller still execs', async () => {
    const exec: Call = { kind: 'exec', ...frontEnd(n.cloudA, true), host: `${n.qd1}:${targetPort(true)}`, path: '/exec/default/web/app?command=sh&stdin=true&stdout=true', inputs: ['id'] };
    const [none, asKubelet, authorized] = await probe([{ ...exec, identity: null }, { ...exec, identity: kubeletIdentity }, exec]) as [Result, Result, Result];
    expect(none.error ?? String(none.status), JSON.stringify(none)).toMatch(/closed|reset|certificate|hang up|EPIPE/i);
    expect(String(asKubelet.status)).toMatch(/ 403 /);
    expect(authorized.exitStatus).toBe('Success');
  });

  it('SSRF: its own InternalIP rewritten to loopback or the metadata address is refused with 403; the cluster keeps working', async () => {
    const before = await kube.get<{ status: { addresses: Array<{ type: string; address: string }> } }>(RESOURCES.nodes, { name: n.hz2 });
    const setAddress = (address: string) => kubelet.patch(RESOURCES.nodes, { name: n.hz2, subresource: 'status' }, {
      status: { addresses: before.status.addresses.map((a) => (a.type === 'InternalIP' ? { ...a, address } : a)) },
    }, 'merge');
    try {
      for (const [address, why] of [['127.0.0.1', /loopback/], ['169.254.169.254', /link-local/]] as const) {
        await setAddress(address);
        const refused = await waitFor(`the proxy to see ${address}`, async () => {
          const [r] = await probe([whoamiVia(n.cloudA, n.hz2)]) as [Result];
          return r.status === 403 ? r : undefined;
        }, 15_000, 300);
        expect(refused.body).toMatch(why);
      }
    } finally {
      await kubelet.patch(RESOURCES.nodes, { name: n.hz2, subresource: 'status' }, { status: { addresses: before.status.addresses } }, 'merge');
    }
    const after = await probe([whoamiVia(n.cloudA, n.hz1), whoamiVia(n.cloudB, n.qd1)]);
    expect(after.map(servedBy)).toEqual([n.hz1, n.qd1]);
  });

  it('relabel-and-hijack: its kubelet may not relabel its Node; relabelled anyway (the second layer), out of its Gateway it gets a client identity for itself, and in qd its tunnels are refused and qd-1 still answers for itself', async () => {
    const relabel = (client: typeof kube, value: string | null) => client.patch(RESOURCES.nodes, { name: n.hz2 }, { metadata: { labels: { [LABELS.gateway]: value } } }, 'merge');
    await expect(relabel(kubelet, null)).rejects.toThrow(/may not set or change its own raven\.openyurt\.io\/gateway label/);
    await expect(relabel(kubelet, gw.qd)).rejects.toThrow(/may not set or change its own/);
    // The admission policy is the first layer; the proxy's own checks must hold even when a label changes by other means.
    const label = (value: string | null) => relabel(kube, value);
    const certDir = join(dir, 'hz2-client-certs');
    await label(null);
    try {
      const { command, args } = appCommand('proxy-client');
      const honest = box.node(n.hz2).spawn(command, [...args, `--kubeconfig=${await boundInside(PROXY_SERVICE_ACCOUNTS.client, n.hz2)}`, `--node-name=${n.hz2}`, `--cert-dir=${certDir}`], { name: 'proxy-client-hz2' });
      try {
        await waitFor('its proxy-client certificate', async () => existsSync(join(certDir, 'client.crt')), 60_000, 200);
      } finally {
        await honest.stop(2_000);
      }
      await label(gw.qd);
      await sleep(1_000);
      const hostile = box.node(n.hz2).exec(process.execPath, ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/proxy-server/test/fixtures/hostile-agent.ts'), JSON.stringify({
        servers: servers.map((s) => ({ address: `${publicIP[s]}:${PORTS.proxyTunnel}`, node: s })), certFile: join(certDir, 'client.crt'), keyFile: join(certDir, 'client.key'),
        caFile: cluster.caCertFile, agentId: n.hz2, hosts: [n.qd1, n.qd2, CONFLICT, '172.16.2.104'], holdMs: 3_000,
      })]);
      const during = await sleep(1_500).then(() => probe(servers.flatMap((s) => [whoamiVia(s, n.qd1), whoamiVia(s, n.qd2)])));
      const attack = JSON.parse((await hostile).stdout.trim().split('\n').pop()!) as Array<{ admitted: boolean; error?: string }>;
      expect(attack).toHaveLength(2);
      for (const a of attack) {
        expect(a.admitted, JSON.stringify(a)).toBe(false);
        expect(a.error).toMatch(/may not serve a domain/);
      }
      expect(during.map(servedBy)).toEqual([n.qd1, n.qd2, n.qd1, n.qd2]);
    } finally {
      await label(gw.hz);
    }
  });
});

describe('proxyConfig.Replicas: 2', () => {
  it('both replicas serve every edge node; killing one, the standby takes over after a bounded error window', async () => {
    const slice = () => kube.get<{ endpoints: Array<{ addresses: string[] }> }>(RESOURCES.endpointSlices, { namespace: ns, name: `${SERVICES.proxyInternal}-ipv4` });
    const targetsFile = join(dir, 'targets.json');
    const outFile = join(dir, 'outcomes.json');
    // kube-proxy's part: the caller follows the internal Service's endpoints.
    let following = true;
    const follow = (async () => {
      while (following) {
        const addresses = await slice().then((s) => s.endpoints.flatMap((e) => e.addresses).sort(), () => undefined);
        if (addresses) writeFileSync(targetsFile, JSON.stringify(addresses));
        await sleep(100);
      }
    })();
    await waitFor('both replicas behind the internal Service', async () => JSON.parse(readFileSync(targetsFile, 'utf8') || '[]').length === 2, 20_000, 100);
    const requester = box.node(n.caller).spawn(process.execPath, ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/proxy-server/test/fixtures/requester.ts'), JSON.stringify({
      targetsFile, port: PORTS.proxyInternalInsecure, host: `${n.hz2}:10255`, path: '/whoami', durationMs: 14_000, intervalMs: 20, outFile,
    })], { name: 'requester', cwd: WORKSPACE_ROOT });
    await waitFor('the requester', async () => readFileSync(requester.logFile, 'utf8').includes('"ready":true'), 20_000, 50);
    const startedAt = Date.now();
    await sleep(3_000);
    const killedAt = Date.now() - startedAt;
    await procs.get(`proxy-server/${n.cloudA}`)!.kill();
    await requester.waitExit();
    following = false;
    await follow;
    const outcomes = JSON.parse(readFileSync(outFile, 'utf8')) as Array<{ t: number; target: string; ok: boolean; status: number; error?: string }>;
    const before = outcomes.filter((o) => o.t < killedAt - 200);
    expect(before.length).toBeGreaterThan(50);
    expect(before.every((o) => o.ok)).toBe(true);
    expect(new Set(before.map((o) => o.target))).toEqual(new Set([serverIP[n.cloudA], serverIP[n.cloudB]]));
    const failures = outcomes.filter((o) => !o.ok);
    const lastFailure = Math.max(killedAt, ...failures.map((o) => o.t));
    const window = lastFailure - killedAt;
    const after = outcomes.filter((o) => o.t > lastFailure);
    console.log(`Replicas 2, one proxy-server killed: ${failures.length} of ${outcomes.length} requests failed (${[...new Set(failures.map((f) => f.error ?? f.status))].join(', ')}), all to the killed replica; error window ${window} ms after the kill; then ${after.length} requests, all served, by ${[...new Set(after.map((o) => o.target))].join(' and ')}`);
    expect(failures.every((o) => o.target === serverIP[n.cloudA])).toBe(true);
    expect(window).toBeLessThan(6_000);
    expect(after.length).toBeGreaterThan(100);
    expect(after.every((o) => o.ok)).toBe(true);
    expect(new Set(after.map((o) => o.target))).toEqual(new Set([serverIP[n.cloudB], serverIP[n.cloudC]]));
    const gateway = await kube.get<Gateway>(RESOURCES.gateways, { name: gw.cloud });
    expect(gateway.status?.activeEndpoints?.filter((e) => e.type === 'proxy').map((e) => e.nodeName)).toEqual([n.cloudB, n.cloudC]);
  });
});
