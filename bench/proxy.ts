// `npm run bench -- proxy [soak]`. L7 proxy benchmark: one request mix through direct / our proxy (proxy-server + proxy-client) / konnectivity
// v0.34.0 (proxy-server in http-connect mode + proxy-agent), all measured in one run, plus how many concurrent
// streams one proxy-server replica holds within 256 MB RSS.
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { get, routes, rssMB, startProxyStack, type ProxyStack, type Route } from './proxy-stack.ts';
import { metricValue, printReport } from './report.ts';
import { alternate, pairedDifferences, pairedRatios, samplesNeeded, summarize } from './stats.ts';

const MiB = 1024 * 1024;
const BLOB = 64 * MiB;
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 100);
const LOAD_MS = Number(process.env.BENCH_LOAD_MS ?? 5_000);
const RSS_BUDGET_MB = 256;
const STREAM_STEP = 1_000;
const STREAM_MAX = Number(process.env.BENCH_STREAMS_MAX ?? 16_000);

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

/** `concurrency` workers issuing small GETs back to back for `ms`: requests per second and latency percentiles. */
export async function smallGets(route: Route, concurrency: number, ms: number): Promise<{ rps: number; p50: number; p99: number; errors: number }> {
  const agent = route.agent();
  const latencies: number[] = [];
  let errors = 0;
  const until = performance.now() + ms;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < until) {
      const t = performance.now();
      const res = await get(route, agent, '/healthz').catch(() => undefined);
      if (res?.status === 200) latencies.push(performance.now() - t);
      else errors++;
    }
  }));
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / elapsed, p50: percentile(latencies, 50), p99: percentile(latencies, 99), errors };
}

/** One 64 MiB GET: MiB/s. */
async function blob(route: Route): Promise<number> {
  const agent = route.agent();
  const t = performance.now();
  const res = await get(route, agent, `/blob?size=${BLOB}`);
  agent.destroy();
  if (res.bytes !== BLOB) throw new Error(`${route.name}: got ${res.bytes} of ${BLOB} bytes`);
  return BLOB / MiB / ((performance.now() - t) / 1000);
}

/** Opens idle streams (GET /hold) through our front end in steps until the server's RSS passes the budget. */
async function streamCapacity(stack: ProxyStack): Promise<{ held: number; rssAtHeld: number; rssAt10k: number | undefined; baseline: number }> {
  const route = routes(stack)[1]!;
  const sockets: Array<{ destroy(): void }> = [];
  const pid = stack.server.proc.pid;
  const baseline = rssMB(pid);
  let held = 0;
  let rssAtHeld = baseline;
  let rssAt10k: number | undefined;
  const openOne = () => new Promise<void>((resolve, reject) => {
    const req = request({ host: route.address, port: route.port, path: '/hold', headers: { host: route.host }, agent: false }, (res) => {
      res.once('data', () => resolve());
      res.on('error', () => undefined);
    });
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('hold timed out')));
    sockets.push(req);
    req.end();
  });
  try {
    while (held < STREAM_MAX) {
      const batch = Array.from({ length: STREAM_STEP }, openOne);
      const results = await Promise.allSettled(batch);
      const failed = results.filter((r) => r.status === 'rejected').length;
      await sleep(500);
      const rss = rssMB(pid);
      if (failed > 0 || rss > RSS_BUDGET_MB) {
        console.log(`  ${held + STREAM_STEP - failed} streams: RSS ${rss.toFixed(0)} MB${failed ? `, ${failed} failed` : ''}: stop`);
        break;
      }
      held += STREAM_STEP;
      rssAtHeld = rss;
      if (held === 10_000) rssAt10k = rss;
      if (held % 4_000 === 0) console.log(`  ${held} streams: proxy-server RSS ${rss.toFixed(0)} MB`);
    }
  } finally {
    for (const s of sockets) s.destroy();
  }
  return { held, rssAtHeld, rssAt10k, baseline };
}

/**
 * p99 event-loop delay from prom-client's default metrics (perf_hooks.monitorEventLoopDelay sampled every 10 ms, so
 * an idle loop reads 10 ms): the part beyond the sampling interval, i.e. how long a ready callback waited.
 */
function eventLoopDelayP99(metrics: string): number {
  return metricValue(metrics, 'nodejs_eventloop_lag_p99_seconds') * 1000 - 10;
}

/** CPU time (user + system) a process has used so far, in ms: immune to other load on the machine. */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** One round of one route: the figures, and the proxy processes' CPU per 1,000 small GETs and per GiB streamed. */
interface RoundFigures {
  rps: number;
  /** Event-loop delay p99 (ms) of proxy-server and proxy-client during the concurrent load; ours only. */
  serverLagP99?: number;
  clientLagP99?: number;
  p99: number;
  idleP99: number;
  mibps: number;
  cpuPerKReq: number;
  cpuPerGiB: number;
}

type RouteName = 'direct' | 'ours' | 'konnectivity';

export async function run(): Promise<void> {
  if (process.argv[3] === 'soak') return (await import('./proxy-soak.ts')).soak();
  const rounds = Number(process.env.BENCH_ROUNDS ?? samplesNeeded());
  console.log(`L7 proxy benchmark: ${CONCURRENCY} concurrent small GETs (${LOAD_MS / 1000} s), one at a time (2 s), 64 MiB streamed; direct / ours / konnectivity v0.34.0 alternated round by round, ${rounds} rounds; loopback, one shared machine`);
  // The capacity row measures memory, not the front end's per-source and total connection caps (2,000 / 10,000).
  const stack = await startProxyStack({ konnectivity: true, serverArgs: [`--max-frontend-connections=${STREAM_MAX + STREAM_STEP}`, `--max-frontend-connections-per-source=${STREAM_MAX + STREAM_STEP}`] });
  try {
    const [directRoute, oursRoute, konnRoute] = routes(stack) as [Route, Route, Route];
    const pids: Record<RouteName, number[]> = {
      direct: [],
      ours: [stack.server.proc.pid, stack.client.proc.pid],
      konnectivity: [stack.konnectivity!.server.pid!, stack.konnectivity!.agent.pid!],
    };
    const cpu = (name: RouteName) => pids[name].reduce((sum, pid) => sum + cpuMs(pid), 0);
    const measure = (name: RouteName, route: Route) => async (): Promise<RoundFigures> => {
      if (name === 'ours') await Promise.all([stack.server.metrics(), stack.client.metrics()]); // a scrape resets the delay histograms
      const c0 = cpu(name);
      const load = await smallGets(route, CONCURRENCY, LOAD_MS);
      if (load.errors > 0) throw new Error(`${route.name}: ${load.errors} failed requests`);
      const c1 = cpu(name);
      const lag = name === 'ours' ? await Promise.all([stack.server.metrics(), stack.client.metrics()].map(async (m) => eventLoopDelayP99(await m))) : [];
      const idle = await smallGets(route, 1, 2_000);
      const c2 = cpu(name);
      const mibps = await blob(route);
      const c3 = cpu(name);
      return { rps: load.rps, serverLagP99: lag[0], clientLagP99: lag[1], p99: load.p99, idleP99: idle.p99, mibps, cpuPerKReq: (c1 - c0) / (load.rps * LOAD_MS / 1e6), cpuPerGiB: (c3 - c2) / 1000 / (BLOB / 2 ** 30) };
    };
    for (const route of [directRoute, oursRoute, konnRoute]) await smallGets(route, CONCURRENCY, 1_000); // warm-up: connections, JIT
    const figures = await alternate({ direct: measure('direct', directRoute), ours: measure('ours', oursRoute), konnectivity: measure('konnectivity', konnRoute) }, rounds,
      (round, v) => console.log(`  round ${round + 1}/${rounds} req/s: direct ${v.direct.rps.toFixed(0)}, ours ${v.ours.rps.toFixed(0)}, konnectivity ${v.konnectivity.rps.toFixed(0)}`));
    const of = (name: RouteName, key: keyof RoundFigures) => figures[name].map((f) => f[key] ?? NaN);
    console.log(`\n${'route (median)'.padEnd(14)} ${'req/s'.padStart(8)} ${'p99 ms'.padStart(8)} ${'1-conc p99'.padStart(10)} ${'MiB/s'.padStart(7)} ${'CPU ms/1k req'.padStart(14)} ${'CPU s/GiB'.padStart(10)}`);
    for (const name of ['direct', 'ours', 'konnectivity'] as const) {
      const m = (key: keyof RoundFigures) => summarize(of(name, key)).median;
      const proxied = pids[name].length > 0;
      console.log(`${name.padEnd(14)} ${m('rps').toFixed(0).padStart(8)} ${m('p99').toFixed(2).padStart(8)} ${m('idleP99').toFixed(3).padStart(10)} ${m('mibps').toFixed(0).padStart(7)} ${(proxied ? m('cpuPerKReq').toFixed(0) : '-').padStart(14)} ${(proxied ? m('cpuPerGiB').toFixed(2) : '-').padStart(10)}`);
    }
    console.log('\nconcurrent streams held by one proxy-server replica:');
    const capacity = await streamCapacity(stack);
    printReport('L7 proxy', [
      { what: `small GETs x${CONCURRENCY}: ours / konnectivity throughput`, samples: pairedRatios(of('ours', 'rps'), of('konnectivity', 'rps')), unit: 'x', goal: { op: '>=', value: 1.3 } },
      { what: '64 MiB stream: ours / konnectivity throughput', samples: pairedRatios(of('ours', 'mibps'), of('konnectivity', 'mibps')), unit: 'x', goal: { op: '>=', value: 1 } },
      { what: 'CPU per request: konnectivity / ours', samples: pairedRatios(of('konnectivity', 'cpuPerKReq'), of('ours', 'cpuPerKReq')), unit: 'x' },
      { what: 'CPU per GiB: konnectivity / ours', samples: pairedRatios(of('konnectivity', 'cpuPerGiB'), of('ours', 'cpuPerGiB')), unit: 'x' },
      { what: 'added p99 latency over direct, 1 request at a time', samples: pairedDifferences(of('ours', 'idleP99'), of('direct', 'idleP99')), unit: 'ms', goal: { op: '<=', value: 1 } },
      { what: "konnectivity's added p99, 1 request at a time", samples: pairedDifferences(of('konnectivity', 'idleP99'), of('direct', 'idleP99')), unit: 'ms' },
      { what: `added p99 latency over direct, ${CONCURRENCY} concurrent`, samples: pairedDifferences(of('ours', 'p99'), of('direct', 'p99')), unit: 'ms', goal: { op: '<=', value: 1 } },
      { what: `konnectivity's added p99, ${CONCURRENCY} concurrent`, samples: pairedDifferences(of('konnectivity', 'p99'), of('direct', 'p99')), unit: 'ms' },
      { what: `event-loop delay p99 under x${CONCURRENCY}: proxy-server`, samples: of('ours', 'serverLagP99'), unit: 'ms' },
      { what: `event-loop delay p99 under x${CONCURRENCY}: proxy-client`, samples: of('ours', 'clientLagP99'), unit: 'ms' },
      // Counted, not timed: how many held streams fit under the budget is the same on a loaded machine.
      { what: `streams one server holds within ${RSS_BUDGET_MB} MB RSS`, value: capacity.held, exact: true, unit: 'streams', goal: { op: '>=', value: 10_000 } },
      { what: 'proxy-server RSS at 10k streams', value: capacity.rssAt10k ?? NaN, unit: `MB (idle ${capacity.baseline.toFixed(0)})` },
    ]);
  } finally {
    await stack.stop();
  }
}
