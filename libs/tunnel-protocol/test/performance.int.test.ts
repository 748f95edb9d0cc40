import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as netConnect, type AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCALHOST, echoServer, patternChunk, readAll, readExactly, sha256 } from './support.ts';
import {
  PROXY_AGENT_BIN, PROXY_SERVER_BIN, createTestPki, freePort, httpConnect, requireBinaries, startFixture, startUpstream, waitForPort,
  type TestPki, type UpstreamProcess,
} from './upstream.ts';

/**
 * Figures for every server x agent pairing (upstream konnectivity v0.34.0 and ours), all through an
 * mTLS HTTP CONNECT frontend like kube-apiserver uses, with our components in their own processes.
 * Only correctness is asserted (plus the memory budget); timings are printed, never asserted.
 */

const SIZE = 64 * 1024 * 1024;
const CHUNK = 1024 * 1024;
const chunks = Array.from({ length: SIZE / CHUNK }, (_, i) => patternChunk(i, CHUNK));
const SHA = sha256(...chunks);
const ROUND_TRIPS = 2_000;
/** The machine is shared: each figure is the best of this many runs. */
const REPEATS = 3;
const STREAMS = 10_000;
const RSS_BUDGET = 256 * 1024 * 1024;

const processes: UpstreamProcess[] = [];
let pki: TestPki;
let web: HttpServer;
let webPort: number;
let echo: Awaited<ReturnType<typeof echoServer>>;

interface Route {
  name: string;
  /** Opens a byte stream to `port` on the loopback target host. */
  open(port: number): Promise<Duplex>;
  /** The server and agent processes on this route, for CPU accounting. */
  processes?: () => [server: UpstreamProcess, agent: UpstreamProcess];
}

/** CPU time (user + system) a child process has used so far; immune to other load on the machine. */
function cpuMs(child: UpstreamProcess): number {
  const fields = readFileSync(`/proc/${child.child.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10; // utime + stime, in 100 Hz ticks
}

/** Frontend ports and processes, known once beforeAll has started everything. */
const frontends = { upstream: 0, ours: 0 };
type Role = 'upServer' | 'ourServer' | 'upAgentOnUp' | 'ourAgentOnUp' | 'upAgentOnOurs' | 'ourAgentOnOurs';
const roles = new Map<Role, UpstreamProcess>();
let ourServerAdminPort = 0;
let ourAgentAdminPort = 0;

function role(name: Role, process: UpstreamProcess): UpstreamProcess {
  roles.set(name, process);
  processes.push(process);
  return process;
}

const pair = (server: Role, agent: Role) => (): [UpstreamProcess, UpstreamProcess] => [roles.get(server)!, roles.get(agent)!];

const viaConnect = (name: string, frontend: keyof typeof frontends, targetHost: string, processes: Route['processes']): Route => ({
  name,
  processes,
  open: async (port) => {
    const { socket, statusLine } = await httpConnect(frontends[frontend], pki, `${targetHost}:${port}`);
    if (!statusLine.includes(' 200 ')) throw new Error(`${name}: CONNECT answered ${statusLine}`);
    socket.setNoDelay(true);
    return socket;
  },
});

// Upstream agents advertise host=localhost and ours ipv4=127.0.0.1, so the CONNECT host picks the agent.
const routes: Route[] = [
  {
    name: 'direct TCP',
    open: async (port) => {
      const socket = netConnect({ port, host: LOCALHOST, noDelay: true });
      await once(socket, 'connect');
      return socket;
    },
  },
  viaConnect('upstream server + upstream agent', 'upstream', 'localhost', pair('upServer', 'upAgentOnUp')),
  viaConnect('upstream server + our agent', 'upstream', LOCALHOST, pair('upServer', 'ourAgentOnUp')),
  viaConnect('our server + upstream agent', 'ours', 'localhost', pair('ourServer', 'upAgentOnOurs')),
  viaConnect('our server + our agent', 'ours', LOCALHOST, pair('ourServer', 'ourAgentOnOurs')),
];

async function admin<T>(port: number, path: string, method = 'GET'): Promise<T> {
  const response = await fetch(`http://${LOCALHOST}:${port}${path}`, { method });
  return (await response.json()) as T;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

beforeAll(async () => {
  requireBinaries();
  pki = await createTestPki('raven-agent');
  echo = await echoServer();
  web = createHttpServer((req, res) => {
    if (req.url === '/blob') {
      res.setHeader('content-length', String(SIZE));
      void (async () => {
        for (const chunk of chunks) if (!res.write(chunk)) await once(res, 'drain');
        res.end();
      })();
    } else {
      void readAll(req).then((body) => res.end(`${body.length} ${sha256(body)}`));
    }
  }).listen(0, LOCALHOST);
  await once(web, 'listening');
  webPort = (web.address() as AddressInfo).port;

  const certFlags = { ca: pki.files.ca, cert: pki.files.agentCert, key: pki.files.agentKey };
  const upstreamAgentArgs = async (serverPort: number, id: string) => [
    `--agent-id=${id}`, '--agent-identifiers=host=localhost', '-v=1', `--proxy-server-host=${LOCALHOST}`, `--proxy-server-port=${serverPort}`,
    `--ca-cert=${pki.files.ca}`, `--agent-cert=${pki.files.agentCert}`, `--agent-key=${pki.files.agentKey}`,
    `--admin-bind-address=${LOCALHOST}`, `--admin-server-port=${await freePort()}`,
    `--health-server-host=${LOCALHOST}`, `--health-server-port=${await freePort()}`, '--sync-interval=100ms',
  ];

  // Upstream proxy-server, with an upstream agent (host=localhost) and ours (ipv4=127.0.0.1).
  const [upFrontend, upAgentPort] = [await freePort(), await freePort()];
  frontends.upstream = upFrontend;
  const upServer = startUpstream('perf-proxy-server', PROXY_SERVER_BIN, [
    '--mode=http-connect', '--proxy-strategies=destHost', '--server-id=upstream', '--server-count=1', '-v=1',
    `--server-bind-address=${LOCALHOST}`, `--server-port=${upFrontend}`,
    `--server-cert=${pki.files.serverCert}`, `--server-key=${pki.files.serverKey}`, `--server-ca-cert=${pki.files.ca}`,
    `--agent-bind-address=${LOCALHOST}`, `--agent-port=${upAgentPort}`,
    `--cluster-cert=${pki.files.serverCert}`, `--cluster-key=${pki.files.serverKey}`, `--cluster-ca-cert=${pki.files.ca}`,
    `--admin-bind-address=${LOCALHOST}`, `--admin-port=${await freePort()}`, `--health-bind-address=${LOCALHOST}`, `--health-port=${await freePort()}`,
  ], pki.dir);
  role('upServer', upServer);
  await waitForPort(upAgentPort, upServer);
  await waitForPort(upFrontend, upServer);
  role('upAgentOnUp', startUpstream('perf-agent-up-up', PROXY_AGENT_BIN, await upstreamAgentArgs(upAgentPort, 'up-up'), pki.dir));
  role('ourAgentOnUp', await startFixture('perf-agent-ours-up', 'our-agent.ts', {
    address: `${LOCALHOST}:${upAgentPort}`, agentId: 'ours-up', identifiers: 'ipv4=127.0.0.1', adminPort: await freePort(), ...certFlags,
  }, pki.dir));

  // Our server, with an upstream agent and ours.
  const [grpcPort, frontendPort, adminPort] = [await freePort(), await freePort(), await freePort()];
  role('ourServer', await startFixture('perf-our-server', 'our-server.ts', {
    grpcPort, frontendPort, adminPort, serverId: 'ours', ca: pki.files.ca, cert: pki.files.serverCert, key: pki.files.serverKey,
  }, pki.dir));
  frontends.ours = frontendPort;
  ourServerAdminPort = adminPort;
  role('upAgentOnOurs', startUpstream('perf-agent-up-ours', PROXY_AGENT_BIN, await upstreamAgentArgs(grpcPort, 'up-ours'), pki.dir));
  ourAgentAdminPort = await freePort();
  role('ourAgentOnOurs', await startFixture('perf-agent-ours-ours', 'our-agent.ts', {
    address: `${LOCALHOST}:${grpcPort}`, agentId: 'ours-ours', identifiers: 'ipv4=127.0.0.1', adminPort: ourAgentAdminPort, ...certFlags,
  }, pki.dir));

  // Upstream agents connect in the background; wait until every route answers.
  for (const route of routes) {
    const deadline = Date.now() + 20_000;
    for (;;) {
      const ok = await route.open(echo.port).then((s) => (s.destroy(), true), () => false);
      if (ok) break;
      if (Date.now() > deadline) throw new Error(`${route.name} never came up`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}, 90_000);

afterAll(async () => {
  await Promise.all(processes.map((p) => p.stop()));
  web?.close();
  await echo?.close();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
});

describe('throughput and latency, every server x agent pairing', () => {
  const rows: string[] = [];
  let directP99 = 0;

  afterAll(() => {
    console.log([
      `best of ${REPEATS}; CPU = server + agent process CPU time per GiB moved (immune to other load on the machine)`,
      'route                              p50 µs  p99 µs  +p99 µs  down MiB/s  up MiB/s  CPU s/GiB (server + agent)',
      ...rows,
    ].join('\n'));
  });

  async function roundTrips(route: Route): Promise<number[]> {
    const socket = await route.open(echo.port);
    const payload = Buffer.alloc(64, 7);
    const latencies: number[] = [];
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const started = process.hrtime.bigint();
      socket.write(payload);
      const back = await readExactly(socket, payload.length);
      latencies.push(Number(process.hrtime.bigint() - started) / 1000);
      expect(back.equals(payload)).toBe(true);
    }
    socket.destroy();
    return latencies.sort((a, b) => a - b);
  }

  async function download(route: Route): Promise<number> {
    const down = await route.open(webPort);
    const started = performance.now();
    down.write('GET /blob HTTP/1.1\r\nHost: edge\r\nConnection: close\r\n\r\n');
    const raw = await readAll(down);
    const ms = performance.now() - started;
    const body = raw.subarray(raw.indexOf('\r\n\r\n') + 4);
    expect(body.length).toBe(SIZE);
    expect(sha256(body)).toBe(SHA);
    return ms;
  }

  async function upload(route: Route): Promise<number> {
    const up = await route.open(webPort);
    const started = performance.now();
    up.write(`POST /sha256 HTTP/1.1\r\nHost: edge\r\nConnection: close\r\nContent-Length: ${SIZE}\r\n\r\n`);
    for (const chunk of chunks) if (!up.write(chunk)) await once(up, 'drain');
    const reply = (await readAll(up)).toString();
    const ms = performance.now() - started;
    expect(reply.endsWith(`${SIZE} ${SHA}`)).toBe(true);
    return ms;
  }

  it.each(routes.map((route, index) => [route.name, index, route] as const))('%s carries small round trips and 64 MiB each way intact', async (_name, index, route) => {
    let [p50, p99, downMs, upMs] = [Infinity, Infinity, Infinity, Infinity];
    const [server, agent] = route.processes?.() ?? [];
    const cpuBefore = server && agent ? cpuMs(server) + cpuMs(agent) : 0;
    for (let i = 0; i < REPEATS; i++) {
      const latencies = await roundTrips(route);
      p50 = Math.min(p50, percentile(latencies, 50));
      p99 = Math.min(p99, percentile(latencies, 99));
      downMs = Math.min(downMs, await download(route));
      upMs = Math.min(upMs, await upload(route));
    }
    const cpu = server && agent ? ((cpuMs(server) + cpuMs(agent) - cpuBefore) / 1000 / ((2 * REPEATS * SIZE) / 2 ** 30)).toFixed(2) : '-';
    if (index === 0) directP99 = p99;
    const mibps = (ms: number) => (SIZE / 1048576 / (ms / 1000)).toFixed(0).padStart(10);
    const added = index === 0 ? '-' : (p99 - directP99).toFixed(0);
    rows.push(`${route.name.padEnd(33)}${p50.toFixed(0).padStart(8)}${p99.toFixed(0).padStart(8)}${added.padStart(9)}  ${mibps(downMs)}${mibps(upMs)}  ${cpu.padStart(10)}`);
  });
});

describe(`${STREAMS} concurrent streams through our server`, () => {
  it('holds them all open within the memory budget', async () => {
    type Stats = { rss: number; heapUsed: number; external: number; arrayBuffers: number; openStreams: number };
    const before = await admin<Stats>(ourServerAdminPort, '/stats');
    const hold = await admin<{ opened: number; failed: number; ms: number }>(
      ourServerAdminPort, `/hold?count=${STREAMS}&target=${LOCALHOST}:${echo.port}&agent=ours-ours`, 'POST',
    );
    const during = await admin<Stats>(ourServerAdminPort, '/stats');
    const agent = await admin<{ rss: number; heapUsed: number }>(ourAgentAdminPort, '/stats');
    await admin(ourServerAdminPort, '/release', 'POST');
    const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
    console.log([
      `${STREAMS} streams opened (each echoed 16 bytes) in ${hold.ms.toFixed(0)} ms, ${hold.failed} failed`,
      `our server RSS ${mib(before.rss)} -> ${mib(during.rss)} (heap ${mib(before.heapUsed)} -> ${mib(during.heapUsed)}, ` +
        `${((during.heapUsed - before.heapUsed) / STREAMS / 1024).toFixed(2)} KiB heap per stream)`,
      `our agent RSS ${mib(agent.rss)} (heap ${mib(agent.heapUsed)}) with ${STREAMS} target sockets`,
    ].join('\n'));
    expect(hold).toMatchObject({ opened: STREAMS, failed: 0 });
    expect(during.openStreams).toBe(STREAMS);
    expect(during.rss).toBeLessThan(RSS_BUDGET);
  }, 120_000);
});
