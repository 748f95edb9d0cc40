import { once } from 'node:events';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { rmSync } from 'node:fs';
import { createSecureServer as createHttp2Server } from 'node:http2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AgentTunnelSet, TunnelServer, tcpDialer, type AgentAdmission, type AgentServiceHandle, type Logger } from '../src/index.ts';
import { LOCALHOST, patternChunk, readAll, sha256, waitFor } from './support.ts';
import {
  PROXY_AGENT_BIN, PROXY_SERVER_BIN, createTestPki, freePort, httpConnect, requireBinaries, startUpstream, waitForPort,
  type TestPki, type UpstreamProcess,
} from './upstream.ts';

/**
 * Our library against the real konnectivity v0.34.0 binaries:
 *  (a) upstream proxy-server (http-connect frontend) <- our AgentTunnelSet
 *  (b) our TunnelServer <- upstream proxy-agent
 * Both over mTLS with certificates from @raven/pki.
 */

const BLOB_SIZE = 64 * 1024 * 1024;
const BLOB_CHUNK = 1024 * 1024;
const blobChunks = Array.from({ length: BLOB_SIZE / BLOB_CHUNK }, (_, i) => patternChunk(i, BLOB_CHUNK));
const BLOB_SHA = sha256(...blobChunks);

const FORBIDDEN_PORT = 1;
// konnectivity v0.34.0 writes its error responses as "HTTP/0.1 502 Bad Gateway" (ProtoMajor unset).
const BAD_GATEWAY = /^HTTP\/\d\.\d 502 Bad Gateway$/;
const processes: UpstreamProcess[] = [];
let pki: TestPki;
let web: HttpServer;
let webPort: number;

const testLogger = (): Logger & { lines: string[] } => {
  const lines: string[] = [];
  const record = (level: string) => (obj: object, msg?: string) => void lines.push(`${level} ${msg ?? ''} ${JSON.stringify(obj, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
  return { lines, debug: record('debug'), info: record('info'), warn: record('warn'), error: record('error') };
};

/** GET /hello -> fixed text; GET /blob -> 64 MiB of pattern bytes; POST /sha256 -> hash of the body. */
function startWebServer(): Promise<void> {
  web = createHttpServer((req, res) => {
    if (req.url === '/hello') {
      res.setHeader('content-length', '19');
      res.end('hello from the edge');
    } else if (req.url === '/blob') {
      res.setHeader('content-length', String(BLOB_SIZE));
      void (async () => {
        for (const chunk of blobChunks) if (!res.write(chunk)) await once(res, 'drain');
        res.end();
      })();
    } else if (req.url === '/sha256' && req.method === 'POST') {
      void readAll(req).then((body) => res.end(`${body.length} ${sha256(body)}`));
    } else {
      res.statusCode = 404;
      res.end();
    }
  });
  web.listen(0, LOCALHOST);
  return once(web, 'listening').then(() => {
    webPort = (web.address() as AddressInfo).port;
  });
}

/** Splits a raw HTTP/1.1 response (Connection: close, content-length) into status line and body. */
function parseResponse(raw: Buffer): { status: string; body: Buffer } {
  const headEnd = raw.indexOf('\r\n\r\n');
  expect(headEnd).toBeGreaterThan(0);
  return { status: raw.subarray(0, raw.indexOf('\r\n')).toString(), body: raw.subarray(headEnd + 4) };
}

const request = (method: string, path: string, length = 0) =>
  `${method} ${path} HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n${length ? `Content-Length: ${length}\r\n` : ''}\r\n`;

beforeAll(async () => {
  requireBinaries();
  pki = await createTestPki('raven-agent');
  await startWebServer();
});

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  web?.close();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('(a) upstream proxy-server in http-connect mode + our agent', () => {
  let frontendPort: number;
  let agents: AgentTunnelSet;
  let server: UpstreamProcess;

  beforeAll(async () => {
    const [agentPort, adminPort, healthPort] = [await freePort(), await freePort(), await freePort()];
    frontendPort = await freePort();
    server = startUpstream('proxy-server', PROXY_SERVER_BIN, [
      '--mode=http-connect', '--proxy-strategies=destHost', '--server-id=upstream-1', '--server-count=1', '-v=3',
      `--server-bind-address=${LOCALHOST}`, `--server-port=${frontendPort}`,
      `--server-cert=${pki.files.serverCert}`, `--server-key=${pki.files.serverKey}`, `--server-ca-cert=${pki.files.ca}`,
      `--agent-bind-address=${LOCALHOST}`, `--agent-port=${agentPort}`,
      `--cluster-cert=${pki.files.serverCert}`, `--cluster-key=${pki.files.serverKey}`, `--cluster-ca-cert=${pki.files.ca}`,
      `--admin-bind-address=${LOCALHOST}`, `--admin-port=${adminPort}`, `--health-bind-address=${LOCALHOST}`, `--health-port=${healthPort}`,
    ], pki.dir);
    processes.push(server);
    await waitForPort(agentPort, server);
    await waitForPort(frontendPort, server);

    agents = new AgentTunnelSet({
      address: `${LOCALHOST}:${agentPort}`,
      tls: () => ({ ca: pki.caPem, key: pki.agent.keyPem, cert: pki.agent.certPem, servername: 'localhost' }),
      agentId: 'raven-agent-1',
      // destHost routing: the upstream server picks us for CONNECT 127.0.0.1:<port>.
      identifiers: { host: ['node-a'], ipv4: [LOCALHOST] },
      dialer: tcpDialer({ allow: (host, port) => host === LOCALHOST && port !== FORBIDDEN_PORT }),
      syncIntervalMs: 100,
    });
    agents.start();
    await waitFor('our agent to reach the upstream server', () => agents.tunnels.size === 1, 15_000);
  });

  afterAll(async () => {
    await agents?.stop();
  });

  it('receives the serverID and serverCount headers', () => {
    const tunnel = agents.tunnels.get('upstream-1');
    expect(tunnel?.serverCount).toBe(1);
    expect(server.log()).toContain('raven-agent-1');
  });

  it('serves an HTTP CONNECT request to a local HTTP server through our agent', async () => {
    const { socket, statusLine } = await httpConnect(frontendPort, pki, `${LOCALHOST}:${webPort}`);
    expect(statusLine).toBe('HTTP/1.1 200 Connection Established');
    socket.write(request('GET', '/hello'));
    const { status, body } = parseResponse(await readAll(socket));
    expect(status).toBe('HTTP/1.1 200 OK');
    expect(body.toString()).toBe('hello from the edge');
    await waitFor('our agent to close the connection', () => agents.tunnels.get('upstream-1')?.stats().connections === 0);
  });

  it('downloads and uploads 64 MiB intact', async () => {
    const down = await httpConnect(frontendPort, pki, `${LOCALHOST}:${webPort}`);
    let started = performance.now();
    down.socket.write(request('GET', '/blob'));
    const { body } = parseResponse(await readAll(down.socket));
    const downMs = performance.now() - started;
    expect(body.length).toBe(BLOB_SIZE);
    expect(sha256(body)).toBe(BLOB_SHA);

    const up = await httpConnect(frontendPort, pki, `${LOCALHOST}:${webPort}`);
    started = performance.now();
    up.socket.write(request('POST', '/sha256', BLOB_SIZE));
    for (const chunk of blobChunks) if (!up.socket.write(chunk)) await once(up.socket, 'drain');
    const reply = parseResponse(await readAll(up.socket));
    const upMs = performance.now() - started;
    expect(reply.body.toString()).toBe(`${BLOB_SIZE} ${BLOB_SHA}`);
    console.log(`[upstream server + our agent] 64 MiB down ${(BLOB_SIZE / 1048576 / (downMs / 1000)).toFixed(0)} MiB/s, up ${(BLOB_SIZE / 1048576 / (upMs / 1000)).toFixed(0)} MiB/s`);
  });

  it('turns a refused dial into 502 Bad Gateway at the upstream frontend', async () => {
    const closedPort = await freePort();
    const { socket, statusLine } = await httpConnect(frontendPort, pki, `${LOCALHOST}:${closedPort}`);
    expect(statusLine).toMatch(BAD_GATEWAY);
    expect((await readAll(socket)).toString()).toContain('connection refused');
  });

  it('relays our dialer policy refusal to the upstream frontend', async () => {
    const { socket, statusLine } = await httpConnect(frontendPort, pki, `${LOCALHOST}:${FORBIDDEN_PORT}`);
    expect(statusLine).toMatch(BAD_GATEWAY);
    expect((await readAll(socket)).toString()).toContain('not allowed by agent policy');
  });
});

describe('(b) our server + upstream proxy-agent', () => {
  const replicas: Array<{ tunnel: TunnelServer; service: AgentServiceHandle; port: number; admissions: AgentAdmission[] }> = [];
  let agent: UpstreamProcess;
  const log = testLogger();

  async function startReplica(serverId: string, serverCount: number) {
    const admissions: AgentAdmission[] = [];
    const tunnel = new TunnelServer({
      serverId, serverCount, logger: log,
      authorize: (admission) => {
        admissions.push(admission);
        if (admission.peerCertificate?.subject.CN !== 'raven-agent') throw new Error('unexpected client certificate');
      },
    });
    const http2 = createHttp2Server({ ca: pki.caPem, cert: pki.server.certPem, key: pki.server.keyPem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
    const service = tunnel.attach(http2);
    http2.listen(0, LOCALHOST);
    await once(http2, 'listening');
    const port = (http2.address() as AddressInfo).port;
    const replica = { tunnel, service, port, admissions };
    replicas.push(replica);
    return replica;
  }

  async function startAgent(port: number, name: string) {
    const [adminPort, healthPort] = [await freePort(), await freePort()];
    const process = startUpstream(name, PROXY_AGENT_BIN, [
      '--agent-id=upstream-agent', '--agent-identifiers=host=node-up&ipv4=127.0.0.2', '-v=3',
      `--proxy-server-host=${LOCALHOST}`, `--proxy-server-port=${port}`,
      `--ca-cert=${pki.files.ca}`, `--agent-cert=${pki.files.agentCert}`, `--agent-key=${pki.files.agentKey}`,
      `--admin-bind-address=${LOCALHOST}`, `--admin-server-port=${adminPort}`, `--health-server-host=${LOCALHOST}`, `--health-server-port=${healthPort}`,
      '--sync-interval=100ms', '--sync-interval-cap=1s',
    ], pki.dir);
    processes.push(process);
    return process;
  }

  beforeAll(async () => {
    const replica = await startReplica('raven-1', 1);
    agent = await startAgent(replica.port, 'proxy-agent');
    await waitFor('the upstream agent to connect', () => replica.tunnel.agents().length === 1, 15_000).catch((error: unknown) => {
      throw new Error(`${String(error)}\n${agent.log().slice(-3000)}\n${log.lines.join('\n')}`);
    });
  });

  afterAll(async () => {
    await agent?.stop();
    for (const r of replicas) {
      r.tunnel.close();
      await r.service.close();
    }
  });

  it('admits the agent with its mTLS identity, agentID and identifiers', () => {
    const [replica] = replicas;
    expect(replica!.admissions[0]).toMatchObject({ agentId: 'upstream-agent', identifiers: { host: ['node-up'], ipv4: ['127.0.0.2'] } });
    expect(new X509Certificate(replica!.admissions[0]!.peerCertificate!.raw).subject).toContain('CN=raven-agent');
  });

  it('dials a local HTTP server through the upstream agent', async () => {
    const stream = await replicas[0]!.tunnel.dial({ host: 'node-up' }, `${LOCALHOST}:${webPort}`);
    stream.write(request('GET', '/hello'));
    const { status, body } = parseResponse(await readAll(stream));
    expect(status).toBe('HTTP/1.1 200 OK');
    expect(body.toString()).toBe('hello from the edge');
  });

  it('downloads and uploads 64 MiB intact', async () => {
    const tunnel = replicas[0]!.tunnel;
    let started = performance.now();
    const down = await tunnel.dial({ agentId: 'upstream-agent' }, `${LOCALHOST}:${webPort}`);
    down.write(request('GET', '/blob'));
    const { body } = parseResponse(await readAll(down));
    const downMs = performance.now() - started;
    expect(body.length).toBe(BLOB_SIZE);
    expect(sha256(body)).toBe(BLOB_SHA);

    started = performance.now();
    const up = await tunnel.dial({ agentId: 'upstream-agent' }, `${LOCALHOST}:${webPort}`);
    up.write(request('POST', '/sha256', BLOB_SIZE));
    for (const chunk of blobChunks) if (!up.write(chunk)) await once(up, 'drain');
    const reply = parseResponse(await readAll(up));
    const upMs = performance.now() - started;
    expect(reply.body.toString()).toBe(`${BLOB_SIZE} ${BLOB_SHA}`);
    console.log(`[our server + upstream agent] 64 MiB down ${(BLOB_SIZE / 1048576 / (downMs / 1000)).toFixed(0)} MiB/s, up ${(BLOB_SIZE / 1048576 / (upMs / 1000)).toFixed(0)} MiB/s`);
  });

  it('reports the agent\'s dial failures as refused', async () => {
    const closedPort = await freePort();
    await expect(replicas[0]!.tunnel.dial({ host: 'node-up' }, `${LOCALHOST}:${closedPort}`)).rejects.toMatchObject({
      name: 'DialError', reason: 'refused', message: expect.stringContaining('connection refused') as unknown,
    });
  });

  it('makes the upstream agent connect to every replica via serverCount', async () => {
    // Two replicas behind one address: the agent must find both through the serverID/serverCount headers.
    const a = await startReplica('ha-1', 2);
    const b = await startReplica('ha-2', 2);
    let next = 0;
    const lb = createNetServer((client) => {
      const upstream = netConnect([a.port, b.port][next++ % 2]!, LOCALHOST);
      client.pipe(upstream).pipe(client);
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    }).listen(0, LOCALHOST);
    await once(lb, 'listening');
    const haAgent = await startAgent((lb.address() as AddressInfo).port, 'proxy-agent-ha');
    try {
      await waitFor('the agent on both replicas', () => a.tunnel.agents().length === 1 && b.tunnel.agents().length === 1, 20_000);
      // And it keeps exactly one stream per replica (it closes duplicates itself).
      await new Promise((r) => setTimeout(r, 500));
      expect([a.tunnel.agents().length, b.tunnel.agents().length]).toEqual([1, 1]);
    } finally {
      await haAgent.stop();
      lb.close();
    }
  });

  it('stops dialing an upstream agent that sent DRAIN (first SIGTERM)', async () => {
    const tunnel = replicas[0]!.tunnel;
    const draining = once(tunnel, 'agentDraining');
    agent.child.kill('SIGTERM');
    // Upstream agents check for drain only between received packets, so DRAIN follows our next packet.
    await new Promise((r) => setTimeout(r, 200));
    const stream = await tunnel.dial({ host: 'node-up' }, `${LOCALHOST}:${webPort}`);
    stream.destroy();
    const [info] = (await draining) as [{ agentId: string }];
    expect(info.agentId).toBe('upstream-agent');
    await expect(tunnel.dial({ host: 'node-up' }, `${LOCALHOST}:${webPort}`)).rejects.toMatchObject({ reason: 'no-agent' });
  });
});
