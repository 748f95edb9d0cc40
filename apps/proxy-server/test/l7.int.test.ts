import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { HEARTBEAT, LABELS, PROXY_SERVICE_ACCOUNTS, heartbeatLeaseName, type Gateway } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { issueCertificate } from '@raven/pki';
import { AgentTunnel, PacketType, encodePacketFrame, startConnectCall, tcpDialer } from '@raven/tunnel-protocol';
import { adminClient, deleteNode, freePort, registerNode, uniqueName, waitFor, type AppProcess } from '@raven/testbed';
import {
  boundKubeconfig, clusterCa, deletePod, enableL7, followLines, httpGet, startKubelet, startPickup, startProxyClient, startProxyServer,
  tempDir, wsExec, type Fixture, type Identity,
} from './support/scenario.ts';

/**
 * proxy-server and proxy-client as processes with their own ServiceAccounts (Pod-bound tokens), certificates from the
 * CSR API, gateway-pickup electing, and kubelet-like endpoints per node, all on loopback addresses:
 *   cloud (exposed): cloud-a (active server), cloud-b (standby server)
 *   edge-1: e1a (proxy endpoint, runs a client), e1b      edge-2: e2a (endpoint, client)      lone: in no Gateway (own client)
 */
const cluster = inject('cluster');
const u = uniqueName('l7').split('-').slice(1).join('-');
const gw = { cloud: `cloud-${u}`, edge1: `edge1-${u}`, edge2: `edge2-${u}` };
const node = { cloudA: `cloud-a-${u}`, cloudB: `cloud-b-${u}`, e1a: `e1a-${u}`, e1b: `e1b-${u}`, e2a: `e2a-${u}`, lone: `lone-${u}`, dup: `dup-${u}` };
const ip = { cloudA: '127.0.0.11', cloudB: '127.0.0.12', e1a: '127.0.0.21', e1b: '127.0.0.22', e2a: '127.0.0.31', lone: '127.0.0.41' };

let kube: KubeClient;
const dir = tempDir('l7-int');
const pods: string[] = [];
const fixtures: Fixture[] = [];
const apps: AppProcess[] = [];
let pickup: Awaited<ReturnType<typeof startPickup>>;
let ports: { https: number; http: number; tunnelA: number; tunnelB: number; feHttp: number; feHttps: number; closed: number };
let caPem: string;
/** Client certificates from the cluster CA (which signs the apiserver's kubelet client certificate here). */
const callers = {} as Record<'admin' | 'edgeKubelet' | 'proxyClient' | 'stranger', Identity>;

const front = (kind: 'http' | 'https', address = ip.cloudA, identity: Identity | undefined = callers.admin) => ({ address, port: kind === 'http' ? ports.feHttp : ports.feHttps, tls: kind === 'https' ? { ca: caPem, ...identity } : undefined });
const whoami = async (kind: 'http' | 'https', host: string, extra: { path?: string; headers?: Record<string, string>; address?: string } = {}) => {
  const res = await httpGet({ ...front(kind, extra.address), host, path: extra.path ?? '/whoami', headers: extra.headers });
  return { status: res.status, body: res.body, json: res.status === 200 ? (JSON.parse(res.body) as { node: string; client: string | null }) : undefined };
};
const targetPort = (kind: 'http' | 'https') => (kind === 'http' ? ports.http : ports.https);

/** Starts apps concurrently, keeping every one that started (for afterAll) even when another fails. */
async function startAll(starters: Array<() => Promise<AppProcess>>): Promise<void> {
  const results = await Promise.allSettled(starters.map((start) => start()));
  for (const r of results) if (r.status === 'fulfilled') apps.push(r.value);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
}

async function bound(sa: string, nodeName: string): Promise<string> {
  const { kubeconfig, pod } = await boundKubeconfig(kube, cluster, sa, nodeName, dir);
  pods.push(pod);
  return kubeconfig;
}

let restoreConfig: (() => Promise<void>) | undefined;

beforeAll(async () => {
  kube = await adminClient(cluster);
  const ca = await clusterCa(cluster);
  caPem = ca.certPem;
  const issue = async (commonName: string, organizations: string[] = []) => {
    const pair = await issueCertificate(ca, { commonName, organizations, usages: ['client'] });
    return { cert: pair.certPem, key: pair.keyPem };
  };
  callers.admin = await issue(`raven-test-caller-${u}`, ['system:masters']);
  callers.edgeKubelet = await issue(`system:node:e1a-${u}`, ['system:nodes']);
  callers.proxyClient = await issue(`raven:proxy-client:e1a-${u}`);
  callers.stranger = await issue(`stranger-${u}`);
  ports = { https: await freePort(), http: await freePort(), tunnelA: await freePort(), tunnelB: await freePort(), feHttp: await freePort(), feHttps: await freePort(), closed: await freePort() };
  const members: Array<[keyof typeof node, string | undefined, string]> = [
    ['cloudA', gw.cloud, ip.cloudA], ['cloudB', gw.cloud, ip.cloudB], ['e1a', gw.edge1, ip.e1a], ['e1b', gw.edge1, ip.e1b],
    ['e2a', gw.edge2, ip.e2a], ['lone', undefined, ip.lone],
  ];
  for (const [key, gateway, address] of members) {
    await registerNode(kube, { name: node[key], internalIP: address, labels: gateway ? { [LABELS.gateway]: gateway } : {} });
  }
  restoreConfig = await enableL7(kube);
  const create = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  await create(gw.cloud, {
    exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: String(ports.http), proxyHTTPSPort: String(ports.https) }, tunnelConfig: { Replicas: 0 },
    endpoints: [
      { nodeName: node.cloudA, type: 'proxy', port: ports.tunnelA, publicIP: ip.cloudA },
      { nodeName: node.cloudB, type: 'proxy', port: ports.tunnelB, publicIP: ip.cloudB },
    ],
  });
  await create(gw.edge1, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.e1a, type: 'proxy', underNAT: true }] });
  await create(gw.edge2, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.e2a, type: 'proxy', underNAT: true }] });
  pickup = await startPickup(cluster);
  for (const [key, , address] of members) {
    fixtures.push(await startKubelet(ca, dir, { node: node[key], host: address, httpsPort: ports.https, httpPort: ports.http }));
  }
  const serverArgs = (key: 'cloudA' | 'cloudB') => ({ node: node[key], bind: ip[key], tunnelPort: key === 'cloudA' ? ports.tunnelA : ports.tunnelB, httpPort: ports.feHttp, httpsPort: ports.feHttps, args: ['--insecure-http-frontend'] });
  const [kcA, kcB] = [await bound(PROXY_SERVICE_ACCOUNTS.server, node.cloudA), await bound(PROXY_SERVICE_ACCOUNTS.server, node.cloudB)];
  const clientConfigs = await Promise.all((['e1a', 'e2a', 'lone'] as const).map(async (key) => [key, await bound(PROXY_SERVICE_ACCOUNTS.client, node[key])] as const));
  await startAll([
    () => startProxyServer(cluster, { ...serverArgs('cloudA'), kubeconfig: kcA }),
    () => startProxyServer(cluster, { ...serverArgs('cloudB'), kubeconfig: kcB }),
    ...clientConfigs.map(([key, kubeconfig]) => () => startProxyClient(cluster, { node: node[key], kubeconfig })),
  ]);
  await waitFor('three proxy-clients connected to cloud-a', async () => /raven_proxy_server_connected_clients 3/.test(await apps[0]!.metrics()), 30_000, 200);
}, 120_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await Promise.all(fixtures.map((f) => f.stop()));
  await pickup?.stop();
  for (const name of Object.values(gw)) await kube.delete(RESOURCES.gateways, { name }).catch(() => undefined);
  await restoreConfig?.();
  for (const pod of pods) await deletePod(kube, pod);
  for (const name of Object.values(node)) await deleteNode(kube, name);
  kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('certificates from the CSR API', () => {
  it('the active server presents its kubelet-serving certificate (CN system:node:<node>, its IPs), verified against the cluster CA', async () => {
    const socket = tlsConnect({ host: ip.cloudA, port: ports.feHttps, ca: caPem, servername: node.cloudA });
    await once(socket, 'secureConnect');
    const cert = socket.getPeerCertificate();
    socket.destroy();
    expect(cert.subject.CN).toBe(`system:node:${node.cloudA}`);
    expect(cert.subjectaltname).toContain(`IP Address:${ip.cloudA}`);
    expect(cert.subjectaltname).toContain('DNS:x-raven-proxy-internal-svc.kube-system.svc');
  });

  it('each CSR was filed by the proxy ServiceAccount from a Pod-bound token naming the node, and approved', async () => {
    type Csr = { spec: { username: string; signerName: string; extra?: Record<string, string[]> }; status?: { conditions?: Array<{ type: string }> } };
    const { items } = await kube.list<Csr>(RESOURCES.csrs);
    const byNode = (n: string) => items.filter((c) => c.spec.extra?.['authentication.kubernetes.io/node-name']?.[0] === n);
    for (const [n, sa, signer] of [[node.cloudA, 'server', 'kubernetes.io/kubelet-serving'], [node.e1a, 'client', 'kubernetes.io/kube-apiserver-client'], [node.lone, 'client', 'kubernetes.io/kube-apiserver-client']] as const) {
      const csrs = byNode(n);
      expect(csrs.length, n).toBeGreaterThan(0);
      expect(csrs[0]!.spec.username).toBe(`system:serviceaccount:kube-system:raven-proxy-${sa}`);
      expect(csrs[0]!.spec.signerName).toBe(signer);
      expect(csrs[0]!.status?.conditions?.map((c) => c.type)).toContain('Approved');
    }
  });
});

describe('routing through both front ends', () => {
  it.each(['http', 'https'] as const)('%s: by node name, to every domain (edge gateways, a node in no Gateway, the cloud itself)', async (kind) => {
    for (const key of ['e1a', 'e1b', 'e2a', 'lone', 'cloudB'] as const) {
      const res = await whoami(kind, `${node[key]}:${targetPort(kind)}`);
      expect(res.status, `${key}: ${res.body}`).toBe(200);
      expect(res.json?.node).toBe(node[key]);
    }
  });

  it('X-Tunnel-Proxy-Host, ?nodeName= and a unique IP literal name the node too', async () => {
    expect((await whoami('http', `anything:${ports.http}`, { headers: { 'X-Tunnel-Proxy-Host': node.e1b } })).json?.node).toBe(node.e1b);
    expect((await whoami('http', `anything:${ports.http}`, { path: `/whoami?nodeName=${node.e2a}` })).json?.node).toBe(node.e2a);
    expect((await whoami('https', `${ip.e1b}:${ports.https}`)).json?.node).toBe(node.e1b);
  });

  it('kubelet pod paths addressed by IP go to the pod\'s node', async () => {
    const pod = uniqueName('logs');
    await kube.create(RESOURCES.pods, { apiVersion: 'v1', kind: 'Pod', metadata: { name: pod, namespace: 'default' }, spec: { nodeName: node.e2a, containers: [{ name: 'c', image: 'busybox' }] } });
    pods.push(pod);
    try {
      const res = await httpGet({ ...front('https'), host: `${ip.e2a}:${ports.https}`, path: `/containerLogs/default/${pod}/c` });
      expect(res.status, res.body).toBe(200);
      expect(res.body).toContain(`node=${node.e2a} pod=default/${pod}`);
    } finally {
      await kube.delete(RESOURCES.pods, { namespace: 'default', name: pod }).catch(() => undefined);
    }
  });

  it('refuses what it must: other ports 403, unknown nodes 404, an ambiguous IP 409, with a reason in the body', async () => {
    const forbidden = await whoami('http', `${node.e1a}:${ports.closed}`);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body).toMatch(/not an HTTP proxy port/);
    expect((await whoami('https', `${node.e1a}:${ports.http}`)).status).toBe(403);
    expect((await whoami('http', `no-such-node:${ports.http}`)).status).toBe(404);
    // A second node with e1b's InternalIP in another domain makes that IP ambiguous.
    await registerNode(kube, { name: node.dup, internalIP: ip.e1b, labels: { [LABELS.gateway]: gw.edge2 } });
    const ambiguous = await waitFor('the duplicate IP to be seen', async () => {
      const res = await whoami('http', `${ip.e1b}:${ports.http}`);
      return res.status === 409 ? res : undefined;
    }, 5_000);
    expect(ambiguous.body).toMatch(/ambiguous/);
    expect((await whoami('http', `${node.e1b}:${ports.http}`)).json?.node).toBe(node.e1b);
    await deleteNode(kube, node.dup);
  });
});

describe('front-end authentication and authorization (a compromised edge node holds its kubelet and proxy-client identities)', () => {
  const exec = (identity: Identity | undefined) => wsExec({ ...front('https'), host: `${node.e1b}:${ports.https}`, path: '/exec/default/p/c?command=sh&stdin=true&stdout=true', inputs: ['id'], tls: true, identity });

  it('a caller without a client certificate is refused in the TLS handshake', async () => {
    await expect(exec(undefined)).rejects.toThrow(/certificate|closed|reset|socket hang up|EPIPE/i);
  });

  it.each(['edgeKubelet', 'proxyClient', 'stranger'] as const)('%s: a certificate from the cluster CA without RBAC on nodes/proxy gets 403, exec included', async (who) => {
    const res = await exec(callers[who]);
    expect(res.status).toMatch(/ 403 /);
    const get = await httpGet({ ...front('https', ip.cloudA, callers[who]), host: `${node.e1b}:${ports.https}`, path: '/whoami' });
    expect(get.status).toBe(403);
    expect(get.body).toMatch(/may not get nodes\/proxy of node/);
  });

  it('the cluster keeps working: an authorized caller still execs', async () => {
    expect((await exec(callers.admin)).status).toMatch(/ 101 /);
  });
});

describe('keep-alive connections', () => {
  /** Sends `requests` one after the other on one HTTP connection to the HTTP front end; collects what came back. */
  async function onOneConnection(requests: string[]): Promise<{ answers: string[]; closed: boolean }> {
    const socket = netConnect({ host: ip.cloudA, port: ports.feHttp });
    await once(socket, 'connect');
    const answers: string[] = [];
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString()));
    for (const request of requests) {
      const before = text.length;
      socket.write(request);
      await waitFor('an answer or a close', async () => closed || /\r\n\r\n[\s\S]*\}/.test(text.slice(before)), 5_000, 20).catch(() => undefined);
      answers.push(text.slice(before));
      if (closed) break;
    }
    socket.destroy();
    return { answers, closed };
  }
  const get = (host: string, extra = '') => `GET /whoami HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

  it('every request on the connection is routed: same target passes, another target closes the connection instead of reaching the first one', async () => {
    const same = await onOneConnection([get(`${node.e1b}:${ports.http}`), get(`${node.e1b}:${ports.http}`)]);
    expect(same.answers.map((a) => /"node":"([^"]+)"/.exec(a)?.[1])).toEqual([node.e1b, node.e1b]);
    const other = await onOneConnection([get(`${node.e1b}:${ports.http}`), get(`${node.e1b}:${ports.http}`, `X-Tunnel-Proxy-Host: ${node.e2a}\r\n`)]);
    expect(/"node":"([^"]+)"/.exec(other.answers[0]!)?.[1]).toBe(node.e1b);
    expect(other.answers[1]).not.toContain(node.e1b);
    expect(other.closed).toBe(true);
  });
});

describe('streams', () => {
  it.each(['http', 'https'] as const)('%s: a followed container log arrives line by line while the target writes it', async (kind) => {
    const res = await followLines({ ...front(kind), host: `${node.e1b}:${targetPort(kind)}`, path: '/containerLogs/default/p/c?follow=true', lines: 10, tls: kind === 'https', identity: callers.admin });
    expect(res.status).toBe(200);
    expect(res.lines.every((l) => l.startsWith(`node=${node.e1b}`))).toBe(true);
    expect(res.chunks).toBeGreaterThan(3);
  });

  it.each(['http', 'https'] as const)('%s: exec upgrades to a websocket end to end; stdin close is carried in-band and answered', async (kind) => {
    const res = await wsExec({ ...front(kind), host: `${node.lone}:${targetPort(kind)}`, path: '/exec/default/p/c?command=sh&stdin=true&stdout=true', inputs: ['echo hello', 'echo again'], tls: kind === 'https', identity: callers.admin });
    expect(res.status).toMatch(/ 101 /);
    expect(res.stdout).toEqual([`${node.lone}: echo hello`, `${node.lone}: echo again`, `${node.lone}: stdin closed, bye`]);
    expect(res.exitStatus).toBe('Success');
  });

  it('/metrics of a target comes through', async () => {
    const res = await httpGet({ ...front('https'), host: `${node.e2a}:${ports.https}`, path: '/metrics' });
    expect(res.body).toContain(`kubelet_node_name{node="${node.e2a}"} 1`);
  });
});

describe('bounded floods: the front ends and the tunnel port keep serving others, RSS stays under the Deployment limit', () => {
  const rssMiB = async () => Number(/^process_resident_memory_bytes (\d+)/m.exec(await apps[0]!.metrics())?.[1]) / 2 ** 20;
  const othersServed = async () => {
    for (const kind of ['http', 'https'] as const) {
      for (const key of ['e1b', 'e2a', 'lone'] as const) expect((await whoami(kind, `${node[key]}:${targetPort(kind)}`)).json?.node, `${kind} ${key}`).toBe(node[key]);
    }
  };
  const sockets: Socket[] = [];
  const openIdle = async (port: number, count: number) => {
    for (let i = 0; i < count; i += 100) {
      await Promise.all(Array.from({ length: Math.min(100, count - i) }, async () => {
        const socket = netConnect({ host: ip.cloudA, port });
        socket.on('error', () => undefined);
        sockets.push(socket);
        await once(socket, 'connect').catch(() => undefined);
      }));
    }
  };
  afterAll(() => {
    for (const socket of sockets) socket.destroy();
  });

  it('unauthenticated: 1,000 idle connections to each of the HTTPS front end, the HTTP front end and the tunnel port, and slow heads', async () => {
    await openIdle(ports.feHttps, 1_000);
    await openIdle(ports.feHttp, 1_000);
    await openIdle(ports.tunnelA, 1_000);
    const slow = Array.from({ length: 100 }, () => {
      const socket = netConnect({ host: ip.cloudA, port: ports.feHttp });
      socket.on('error', () => undefined);
      sockets.push(socket);
      return socket;
    });
    const head = Buffer.from(`GET /whoami HTTP/1.1\r\nHost: ${node.e1b}:${ports.http}\r\nX-Slow: ${'a'.repeat(40)}`);
    let sent = 0;
    const dribble = setInterval(() => {
      for (const socket of slow) socket.write(head.subarray(sent % head.length, (sent % head.length) + 1));
      sent++;
    }, 50);
    try {
      await othersServed();
    } finally {
      clearInterval(dribble);
    }
    expect(await rssMiB()).toBeLessThan(512);
    for (const socket of sockets.splice(0)) socket.destroy();
  }, 120_000);

  it('an admitted client (e1a\'s identity): 1,000 tunnels are capped at 8, an oversized message ends its stream; others keep being served', async () => {
    const tls = () => ({ ca: caPem, cert: callers.proxyClient.cert, key: callers.proxyClient.key, servername: node.cloudA });
    const tunnels: AgentTunnel[] = [];
    const errors: string[] = [];
    for (let i = 0; i < 1_000; i += 50) {
      const batch = await Promise.allSettled(Array.from({ length: 50 }, () => AgentTunnel.connect({
        address: `${ip.cloudA}:${ports.tunnelA}`, tls, agentId: node.e1a, identifiers: { host: [node.e1a] }, dialer: tcpDialer(),
      })));
      for (const r of batch) {
        if (r.status === 'fulfilled') tunnels.push(r.value);
        else errors.push(String(r.reason));
      }
    }
    try {
      expect(tunnels.length).toBeLessThanOrEqual(8);
      expect(errors.length).toBeGreaterThanOrEqual(992);
      expect(errors.filter((e) => /already holds \d+ streams/.test(e)).length).toBeGreaterThan(900);
      const call = startConnectCall(`${ip.cloudA}:${ports.tunnelA}`, tls(), { agentid: node.e1a, agentidentifiers: `host=${node.e1a}` }, { intervalMs: 0, timeoutMs: 0 });
      call.stream.on('error', () => undefined);
      call.stream.write(encodePacketFrame({ type: PacketType.DATA, connectId: 1n, data: Buffer.alloc(2 * 1024 * 1024), error: '' }));
      const status = await call.status;
      call.session.destroy();
      expect(status?.details ?? '').toMatch(/exceeds|RESOURCE_EXHAUSTED|holds/);
      await othersServed();
      expect(await rssMiB()).toBeLessThan(512);
    } finally {
      for (const t of tunnels) t.close();
    }
    await waitFor('the real clients connected again', async () => /raven_proxy_server_connected_clients 3/.test(await apps[0]!.metrics()), 30_000, 200);
  }, 180_000);
});

describe('activation', () => {
  it('the standby replica is warm but refuses requests; the active one reports clients, streams, bytes and dial latency', async () => {
    const standby = await whoami('http', `${node.e1a}:${ports.http}`, { address: ip.cloudB });
    expect(standby.status).toBe(503);
    expect(standby.body).toMatch(/standby/);
    expect((await apps[1]!.get('/readyz')).status).toBe(200);
    const metrics = await apps[0]!.metrics();
    expect(metrics).toMatch(/raven_proxy_server_active 1/);
    expect(metrics).toMatch(/raven_proxy_server_bytes_total\{direction="from_target"\} [1-9]/);
    expect(metrics).toMatch(/raven_proxy_server_dial_duration_seconds_count\{path="tunnel",result="ok"\} [1-9]/);
    expect(metrics).toMatch(/raven_proxy_server_errors_total\{reason="forbidden-port"\} [1-9]/);
    expect(metrics).toMatch(/raven_proxy_server_requests_total\{frontend="https",code="relayed"\} [1-9]/);
    expect(await apps[1]!.metrics()).toMatch(/raven_proxy_server_active 0/);
  });

  it('proxy heartbeat Leases are renewed for every proxy endpoint candidate', async () => {
    for (const n of [node.cloudA, node.cloudB, node.e1a, node.e2a]) {
      const lease = await kube.get<{ spec: { holderIdentity: string } }>(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: heartbeatLeaseName('proxy', n) });
      expect(lease.spec.holderIdentity).toBe(n);
    }
  });

  it('moving the election moves the service: cloud-b takes over when cloud-a is removed from the endpoints', async () => {
    const current = await kube.get<Gateway>(RESOURCES.gateways, { name: gw.cloud });
    const endpoints = current.spec?.endpoints?.filter((e) => e.nodeName !== node.cloudA);
    await kube.patch(RESOURCES.gateways, { name: gw.cloud }, { spec: { endpoints } }, 'merge');
    const started = Date.now();
    await waitFor('cloud-b to serve e1b', async () => (await whoami('http', `${node.e1b}:${ports.http}`, { address: ip.cloudB })).status === 200, 20_000, 100);
    console.log(`failover by re-election: cloud-b served ${Date.now() - started} ms after the spec change`);
    expect((await whoami('http', `${node.e1b}:${ports.http}`)).status).toBe(503);
  });
});
