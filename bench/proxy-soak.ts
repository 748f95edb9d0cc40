// L7 proxy soak (`npm run bench -- proxy soak`, BENCH_SOAK_MINUTES, default 3, at most 30): mixed load through our
// proxy-server and proxy-client for a bounded time; their RSS and open file descriptors must be flat at the end.
import { Agent, request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { printReport } from './report.ts';
import { get, openFds, routes, rssMB, startProxyStack, type ProxyStack, type Route } from './proxy-stack.ts';

const MINUTES = Math.min(30, Number(process.env.BENCH_SOAK_MINUTES ?? 3));
const SAMPLE_MS = 5_000;

interface Sample {
  at: number;
  serverRss: number;
  clientRss: number;
  serverFds: number;
  clientFds: number;
}

function sample(stack: ProxyStack, started: number): Sample {
  const [server, client] = [stack.server.proc.pid, stack.client.proc.pid];
  return { at: (Date.now() - started) / 1000, serverRss: rssMB(server), clientRss: rssMB(client), serverFds: openFds(server), clientFds: openFds(client) };
}

/** A sample once the open descriptors stop changing (closed connections take a moment to go), at most 15 s. */
async function settled(stack: ProxyStack, started: number): Promise<Sample> {
  let last = sample(stack, started);
  for (let i = 0; i < 15; i++) {
    await sleep(1_000);
    const next = sample(stack, started);
    if (next.serverFds === last.serverFds && next.clientFds === last.clientFds) return next;
    last = next;
  }
  return last;
}

/** Small GETs on keep-alive connections, a fresh connection pool every 500 requests (connection churn). */
async function smallGetLoop(route: Route, until: number, counts: { ok: number; failed: number }): Promise<void> {
  let agent = route.agent();
  let n = 0;
  while (Date.now() < until) {
    const res = await get(route, agent, '/healthz').catch(() => undefined);
    if (res?.status === 200) counts.ok++;
    else counts.failed++;
    if (++n % 500 === 0) {
      agent.destroy();
      agent = route.agent();
    }
  }
  agent.destroy();
}

/** A followed stream held for a while, then dropped by the caller (like `kubectl logs -f` ended with ^C). */
function holdFor(route: Route, ms: number, counts: { ok: number; failed: number }): Promise<void> {
  return new Promise((resolve) => {
    const req = request({ host: route.address, port: route.port, path: '/containerLogs/default/soak/c?follow=true', headers: { host: route.host }, agent: false }, (res) => {
      res.on('data', () => undefined);
      res.on('error', () => undefined);
      setTimeout(() => {
        counts[res.statusCode === 200 ? 'ok' : 'failed']++;
        req.destroy();
        resolve();
      }, ms);
    });
    req.on('error', () => {
      counts.failed++;
      resolve();
    });
    req.end();
  });
}

export async function soak(): Promise<void> {
  console.log(`L7 proxy soak: ${MINUTES} min of mixed load (small GETs x20 with connection churn, 16 MiB downloads, followed logs opened and dropped)`);
  const stack = await startProxyStack({ konnectivity: false });
  try {
    const route = routes(stack)[1]!;
    const counts = { ok: 0, failed: 0 };
    // Warm up once so that lazily created state (JIT, pools, TLS contexts) is not mistaken for growth.
    await Promise.all(Array.from({ length: 20 }, () => smallGetLoop(route, Date.now() + 3_000, counts)));
    const started = Date.now();
    const before = await settled(stack, started);
    const until = started + MINUTES * 60_000;
    const samples: Sample[] = [];
    const sampler = setInterval(() => samples.push(sample(stack, started)), SAMPLE_MS);
    const follows = { ok: 0, failed: 0 };
    const downloads = { ok: 0, failed: 0 };
    await Promise.all([
      ...Array.from({ length: 20 }, () => smallGetLoop(route, until, counts)),
      (async () => {
        while (Date.now() < until) await Promise.all(Array.from({ length: 10 }, () => holdFor(route, 2_000, follows)));
      })(),
      (async () => {
        while (Date.now() < until) {
          const res = await get(route, new Agent(), `/blob?size=${16 * 1024 * 1024}`).catch(() => undefined);
          downloads[res?.bytes === 16 * 1024 * 1024 ? 'ok' : 'failed']++;
          await sleep(5_000);
        }
      })(),
    ]);
    clearInterval(sampler);
    const after = await settled(stack, started);
    const third = Math.max(1, Math.floor(samples.length / 3));
    const mean = (xs: Sample[], key: keyof Sample) => xs.reduce((s, x) => s + x[key], 0) / xs.length;
    const [middle, last] = [samples.slice(third, 2 * third), samples.slice(-third)];
    console.log(`${counts.ok} small GETs (${counts.failed} failed), ${follows.ok} followed logs (${follows.failed} failed), ${downloads.ok} downloads (${downloads.failed} failed)`);
    console.log(`samples (s: server RSS MB/fds, client RSS MB/fds): ${samples.map((s) => `${s.at.toFixed(0)}: ${s.serverRss.toFixed(0)}/${s.serverFds} ${s.clientRss.toFixed(0)}/${s.clientFds}`).join('; ')}`);
    printReport(`L7 proxy soak, ${MINUTES} min`, [
      { what: 'failed requests', value: counts.failed + follows.failed + downloads.failed, unit: 'requests', goal: { op: '<=', value: 0 } },
      { what: 'proxy-server RSS, last third vs middle third', value: (mean(last, 'serverRss') / mean(middle, 'serverRss') - 1) * 100, unit: '%', goal: { op: '<=', value: 10 } },
      { what: 'proxy-client RSS, last third vs middle third', value: (mean(last, 'clientRss') / mean(middle, 'clientRss') - 1) * 100, unit: '%', goal: { op: '<=', value: 10 } },
      { what: 'proxy-server open fds, idle after vs before', value: after.serverFds - before.serverFds, unit: 'fds', goal: { op: '<=', value: 2 } },
      { what: 'proxy-client open fds, idle after vs before', value: after.clientFds - before.clientFds, unit: 'fds', goal: { op: '<=', value: 2 } },
      { what: 'proxy-server RSS before / after', value: after.serverRss, unit: `MB (before ${before.serverRss.toFixed(0)})` },
      { what: 'proxy-client RSS before / after', value: after.clientRss, unit: `MB (before ${before.clientRss.toFixed(0)})` },
    ]);
  } finally {
    await stack.stop();
  }
}
