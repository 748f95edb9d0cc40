import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createSecureServer as createHttp2Server } from 'node:http2';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS, PROXY_SERVICE_ACCOUNTS, proxyClientCommonName, servingCommonName } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { createCA, issueCertificate, type CertificateAuthority, type KeyPairPem } from '@raven/pki';
import { adminClient, binaryPath, deleteNode, freePort, konnectivityPort, registerNode, uniqueName, waitFor, type AppProcess } from '@raven/testbed';
import { AgentTunnel, DialError, HandshakeError, TunnelServer, tcpDialer, type AgentTunnelOptions } from '@raven/tunnel-protocol';
import {
  boundKubeconfig, clusterCa, deletePod, enableL7, httpGet, startKubelet, startPickup, startProxyClient, startProxyServer, tempDir, type Fixture,
} from './support/scenario.ts';

/**
 * Who may connect and what may be reached, and interoperability with upstream konnectivity v0.34.0:
 *   cloud (exposed): c (our proxy-server)       domain A: a1 (endpoint, our proxy-client), a2       domain B: b1 (endpoint)
 * An HTTP server on 127.0.0.81, which is no node's address, stands for "anything outside the target domain".
 */
const cluster = inject('cluster');
const u = uniqueName('az').split('-').slice(1).join('-');
const gw = { cloud: `azc-${u}`, a: `aza-${u}`, b: `azb-${u}` };
const node = { c: `azc-${u}`, a1: `aza1-${u}`, a2: `aza2-${u}`, b1: `azb1-${u}` };
const ip = { c: '127.0.0.51', a1: '127.0.0.61', a2: '127.0.0.62', b1: '127.0.0.71', outside: '127.0.0.81' };

let kube: KubeClient;
let ca: CertificateAuthority;
const dir = tempDir('authz-int');
const pods: string[] = [];
const fixtures: Fixture[] = [];
const apps: AppProcess[] = [];
const cleanups: Array<() => Promise<void> | void> = [];
let pickup: Awaited<ReturnType<typeof startPickup>>;
let ports: { https: number; http: number; tunnel: number; feHttp: number; feHttps: number; testTunnel: number };
let server: AppProcess;
let outsideHits = 0;
let testTunnel: TunnelServer;

const whoami = async (host: string) => {
  const res = await httpGet({ address: ip.c, port: ports.feHttp, host, path: '/whoami' });
  return { status: res.status, body: res.body, node: res.status === 200 ? (JSON.parse(res.body) as { node: string }).node : undefined };
};

async function writePair(name: string, pair: KeyPairPem): Promise<{ cert: string; key: string }> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  writeFileSync(files.cert, pair.certPem);
  writeFileSync(files.key, pair.keyPem, { mode: 0o600 });
  return files;
}

const agentAs = async (cn: string, signer: CertificateAuthority, overrides: Partial<AgentTunnelOptions>): Promise<AgentTunnelOptions> => {
  const pair = await issueCertificate(signer, { commonName: cn, usages: ['client'] });
  return {
    address: `${ip.c}:${ports.tunnel}`,
    tls: () => ({ ca: ca.certPem, key: pair.keyPem, cert: pair.certPem, servername: node.c }),
    agentId: node.b1, identifiers: { host: [node.b1] }, dialer: tcpDialer(), handshakeTimeoutMs: 5_000,
    ...overrides,
  };
};

function startUpstream(name: string, bin: string, args: string[]): ChildProcess {
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const log = createWriteStream(join(dir, `${name}.log`));
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  cleanups.push(async () => {
    process.off('exit', kill);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  return child;
}

let restoreConfig: (() => Promise<void>) | undefined;

beforeAll(async () => {
  kube = await adminClient(cluster);
  ca = await clusterCa(cluster);
  ports = { https: await freePort(), http: await freePort(), tunnel: await freePort(), feHttp: await freePort(), feHttps: await freePort(), testTunnel: await freePort() };
  for (const [key, gateway] of [['c', gw.cloud], ['a1', gw.a], ['a2', gw.a], ['b1', gw.b]] as const) {
    await registerNode(kube, { name: node[key], internalIP: ip[key], labels: { [LABELS.gateway]: gateway } });
  }
  restoreConfig = await enableL7(kube);
  const create = (name: string, spec: object) => kube.create(RESOURCES.gateways, { apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name }, spec });
  await create(gw.cloud, {
    exposeType: 'PublicIP', proxyConfig: { Replicas: 1, proxyHTTPPort: String(ports.http), proxyHTTPSPort: String(ports.https) }, tunnelConfig: { Replicas: 0 },
    endpoints: [{ nodeName: node.c, type: 'proxy', port: ports.tunnel, publicIP: ip.c }],
  });
  await create(gw.a, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.a1, type: 'proxy', underNAT: true }] });
  await create(gw.b, { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 0 }, endpoints: [{ nodeName: node.b1, type: 'proxy', underNAT: true }] });
  pickup = await startPickup(cluster);
  for (const key of ['a1', 'a2', 'b1'] as const) fixtures.push(await startKubelet(ca, dir, { node: node[key], host: ip[key], httpsPort: ports.https, httpPort: ports.http }));
  const outside: HttpServer = createHttpServer((_req, res) => {
    outsideHits++;
    res.end('outside\n');
  }).listen(ports.http, ip.outside);
  await once(outside, 'listening');
  cleanups.push(() => void outside.close());

  // A TunnelServer of our own, standing in for "some server" that sends the proxy-client arbitrary dials.
  const serving = await issueCertificate(ca, { commonName: 'test-tunnel-server', ipAddresses: ['127.0.0.1'], usages: ['server'] });
  testTunnel = new TunnelServer({ serverId: 'test', serverCount: 1 });
  const http2 = createHttp2Server({ ca: ca.certPem, cert: serving.certPem, key: serving.keyPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  const testService = testTunnel.attach(http2);
  http2.listen(ports.testTunnel, '127.0.0.1');
  await once(http2, 'listening');
  cleanups.push(async () => {
    testTunnel.close();
    await testService.close();
  });

  const bound = async (sa: string, n: string) => {
    const { kubeconfig, pod } = await boundKubeconfig(kube, cluster, sa, n, dir);
    pods.push(pod);
    return kubeconfig;
  };
  server = await startProxyServer(cluster, { node: node.c, kubeconfig: await bound(PROXY_SERVICE_ACCOUNTS.server, node.c), bind: ip.c, tunnelPort: ports.tunnel, httpPort: ports.feHttp, httpsPort: ports.feHttps, args: ['--insecure-http-frontend'] });
  apps.push(server);
  apps.push(await startProxyClient(cluster, { node: node.a1, kubeconfig: await bound(PROXY_SERVICE_ACCOUNTS.client, node.a1), args: [`--server-address=127.0.0.1:${ports.testTunnel}`] }));
  await waitFor('a1\'s client on both servers', async () => /raven_proxy_server_connected_clients 1/.test(await server.metrics()) && testTunnel.agents().length === 1, 20_000, 100);
}, 120_000);

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await Promise.all(fixtures.map((f) => f.stop()));
  for (const cleanup of cleanups.reverse()) await cleanup();
  await pickup?.stop();
  for (const name of Object.values(gw)) await kube.delete(RESOURCES.gateways, { name }).catch(() => undefined);
  await restoreConfig?.();
  for (const pod of pods) await deletePod(kube, pod);
  for (const name of Object.values(node)) await deleteNode(kube, name);
  kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('who may connect to the tunnel port', () => {
  it('a client without a certificate of the cluster CA is refused at the TLS handshake', async () => {
    const foreign = await createCA('not-the-cluster-ca');
    await expect(AgentTunnel.connect(await agentAs(proxyClientCommonName(node.b1), foreign, {}))).rejects.toBeInstanceOf(HandshakeError);
    const noCert: AgentTunnelOptions = { ...(await agentAs(proxyClientCommonName(node.b1), ca, {})), tls: () => ({ ca: ca.certPem, servername: node.c }) };
    await expect(AgentTunnel.connect(noCert)).rejects.toBeInstanceOf(HandshakeError);
    expect(await server.metrics()).toMatch(/raven_proxy_server_connected_clients 1/);
  });

  it('a client claiming a node of another Gateway, another node\'s agent ID, or a non-client identity is refused and logged', async () => {
    const attempts = [
      await agentAs(proxyClientCommonName(node.b1), ca, { identifiers: { host: [node.b1, node.a2] } }),
      await agentAs(proxyClientCommonName(node.b1), ca, { agentId: node.a1 }),
      await agentAs(servingCommonName(node.b1), ca, {}),
    ];
    for (const attempt of attempts) {
      const err = await AgentTunnel.connect(attempt).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(HandshakeError);
      expect((err as HandshakeError).reason).toBe('unauthorized');
    }
    const log = readFileSync(server.logFile, 'utf8');
    expect(log).toMatch(new RegExp(`"reason":"foreign-claim".*claims ${node.a2} outside its domain`));
    expect(log).toMatch(/"reason":"bad-identity".*agentID/);
    expect(await server.metrics()).toMatch(/raven_proxy_server_errors_total\{reason="client-rejected"\} 3/);
  });

  it('an admitted client serves only its own domain, whatever it advertises', async () => {
    const dialed: string[] = [];
    const agent = await AgentTunnel.connect(await agentAs(proxyClientCommonName(node.b1), ca, {
      dialer: (address, context) => {
        dialed.push(address);
        return tcpDialer()(address, context);
      },
    }));
    try {
      expect((await whoami(`${node.b1}:${ports.http}`)).node).toBe(node.b1);
      expect((await whoami(`${node.a2}:${ports.http}`)).node).toBe(node.a2);
      expect(dialed).toEqual([`${ip.b1}:${ports.http}`]);
    } finally {
      agent.close();
    }
    // With no client for its domain, a request waits --client-wait (3 s) for one, then fails.
    await waitFor('b1 gone', async () => (await whoami(`${node.b1}:${ports.http}`)).status === 502, 15_000);
  });
});

describe('what a proxy-client dials', () => {
  const dial = (address: string) => testTunnel.dial({ agentId: node.a1 }, address, { timeoutMs: 5_000 }).then((s) => {
    s.destroy();
    return 'ok';
  }, (err: unknown) => (err instanceof DialError ? `${err.reason}: ${err.message}` : String(err)));

  it('only nodes of its own domain, by name or InternalIP, on proxy ports; nothing outside the domain', async () => {
    expect(await dial(`${ip.a2}:${ports.http}`)).toBe('ok');
    expect(await dial(`${node.a2}:${ports.https}`)).toBe('ok');
    expect(await dial(`${ip.a2}:${ports.testTunnel}`)).toMatch(/refused: .*not a proxy port/);
    expect(await dial(`${ip.b1}:${ports.http}`)).toMatch(/refused: .*not a node of this proxy-client's domain/);
    expect(await dial(`${node.b1}:${ports.http}`)).toMatch(/refused/);
    expect(await dial(`${ip.outside}:${ports.http}`)).toMatch(/refused/);
    expect(await dial(`127.0.0.1:${ports.http}`)).toMatch(/refused/);
    expect(outsideHits).toBe(0);
  });
});

describe('interoperability with upstream konnectivity v0.34.0', () => {
  it('our proxy-client serves requests through an upstream konnectivity proxy-server (http-connect, destHost)', async () => {
    const [agentPort, frontendPort] = [await konnectivityPort(), await konnectivityPort()];
    const serving = await writePair('konn-server', await issueCertificate(ca, { commonName: 'konnectivity-server', ipAddresses: ['127.0.0.1'], usages: ['server'] }));
    const frontendClient = await issueCertificate(ca, { commonName: 'kube-apiserver', usages: ['client'] });
    startUpstream('konnectivity-server', binaryPath('konnectivity-server'), [
      '--mode=http-connect', '--proxy-strategies=destHost', '--server-id=konn-1', '--server-count=1', '-v=2',
      '--server-bind-address=127.0.0.1', `--server-port=${frontendPort}`, `--server-cert=${serving.cert}`, `--server-key=${serving.key}`, `--server-ca-cert=${cluster.caCertFile}`,
      '--agent-bind-address=127.0.0.1', `--agent-port=${agentPort}`, `--cluster-cert=${serving.cert}`, `--cluster-key=${serving.key}`, `--cluster-ca-cert=${cluster.caCertFile}`,
      '--admin-bind-address=127.0.0.1', `--admin-port=${await konnectivityPort()}`, '--health-bind-address=127.0.0.1', `--health-port=${await konnectivityPort()}`,
    ]);
    const second = await boundKubeconfig(kube, cluster, PROXY_SERVICE_ACCOUNTS.client, node.a1, dir, 'konn');
    pods.push(second.pod);
    apps.push(await startProxyClient(cluster, { node: node.a1, name: 'proxy-client-a1-konnectivity', kubeconfig: second.kubeconfig, args: [`--server-address=127.0.0.1:${agentPort}`] }));
    const connect = async (target: string) => {
      const socket = tlsConnect({ host: '127.0.0.1', port: frontendPort, ca: ca.certPem, cert: frontendClient.certPem, key: frontendClient.keyPem });
      await once(socket, 'secureConnect');
      socket.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
      socket.write(`GET /whoami HTTP/1.1\r\nHost: ${target}\r\nConnection: close\r\n\r\n`);
      let raw = '';
      for await (const chunk of socket) raw += (chunk as Buffer).toString();
      return raw;
    };
    const raw = await waitFor('a CONNECT to a2 by name through konnectivity', async () => {
      const out = await connect(`${node.a2}:${ports.http}`).catch(() => '');
      return out.includes(`"node":"${node.a2}"`) ? out : undefined;
    }, 20_000, 250);
    expect(raw).toMatch(/^HTTP\/1\.1 200/);
    expect(await connect(`${ip.a2}:${ports.http}`)).toContain(`"node":"${node.a2}"`);
    expect(await connect(`${node.b1}:${ports.http}`)).not.toContain('"node"');
  });

  it('an upstream konnectivity agent serves requests through our proxy-server', async () => {
    const agentCert = await writePair('konn-agent', await issueCertificate(ca, { commonName: proxyClientCommonName(node.b1), usages: ['client'] }));
    startUpstream('konnectivity-agent', binaryPath('konnectivity-agent'), [
      `--agent-id=${node.b1}`, `--agent-identifiers=host=${node.b1}`, '-v=2', `--proxy-server-host=${ip.c}`, `--proxy-server-port=${ports.tunnel}`,
      `--ca-cert=${cluster.caCertFile}`, `--agent-cert=${agentCert.cert}`, `--agent-key=${agentCert.key}`,
      '--admin-bind-address=127.0.0.1', `--admin-server-port=${await konnectivityPort()}`, '--health-server-host=127.0.0.1', `--health-server-port=${await konnectivityPort()}`,
      '--sync-interval=100ms', '--sync-interval-cap=1s',
    ]);
    const res = await waitFor('b1 served through the upstream agent', async () => {
      const r = await whoami(`${node.b1}:${ports.http}`);
      return r.status === 200 ? r : undefined;
    }, 20_000, 200);
    expect(res.node).toBe(node.b1);
    const caller = await issueCertificate(ca, { commonName: 'raven-test-caller', organizations: ['system:masters'], usages: ['client'] });
    const https = await httpGet({ address: ip.c, port: ports.feHttps, host: `${node.b1}:${ports.https}`, path: '/whoami', tls: { ca: ca.certPem, cert: caller.certPem, key: caller.keyPem } });
    expect(JSON.parse(https.body)).toMatchObject({ node: node.b1 });
  });
});
