// gateway-pickup at scale against the real apiserver: 10,000 Nodes, 1,000 Gateways of 10 members each.
import { mkdtempSync, readFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { LABELS } from '@raven/api-types';
import { Informer, RESOURCES, createLogger, type KubeClient } from '@raven/controller-kit';
import { adminClient, startApp, startCluster, waitFor, type AppProcess, type ClusterInfo } from '@raven/testbed';
import { metricValue, peakRssMB, printReport } from './report.ts';

const NODES = Number(process.env.BENCH_NODES ?? 10_000);
const GATEWAYS = Number(process.env.BENCH_GATEWAYS ?? 1_000);
const MEMBERS = NODES / GATEWAYS;
const RESYNC_S = 15;
const RESYNCS = Number(process.env.BENCH_RESYNCS ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 6);
const COLD_START_GOAL_S = 3;

async function inBatches<T>(items: T[], concurrency: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await work(items[next++]!);
  }));
}

async function populate(kube: KubeClient): Promise<void> {
  const nodeIndex = [...Array(NODES).keys()];
  const started = Date.now();
  await inBatches(nodeIndex, 48, async (i) => {
    const name = `bench-node-${String(i).padStart(5, '0')}`;
    const gw = `bench-gw-${String(Math.floor(i / MEMBERS)).padStart(4, '0')}`;
    await kube.create(RESOURCES.nodes, { apiVersion: 'v1', kind: 'Node', metadata: { name, labels: { [LABELS.gateway]: gw } }, spec: { podCIDR: `10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`, podCIDRs: [`10.${64 + Math.floor(i / 256)}.${i % 256}.0/24`] } });
    await kube.patch(RESOURCES.nodes, { name, subresource: 'status' }, { status: { addresses: [{ type: 'InternalIP', address: `172.${16 + Math.floor(i / 65536)}.${Math.floor(i / 256) % 256}.${i % 256}` }], conditions: [{ type: 'Ready', status: 'True', reason: 'Bench', message: 'bench', lastHeartbeatTime: new Date().toISOString().replace(/\.\d+Z/, 'Z'), lastTransitionTime: new Date().toISOString().replace(/\.\d+Z/, 'Z') }] } }, 'strategic');
  });
  console.log(`created ${NODES} nodes in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  await inBatches([...Array(GATEWAYS).keys()], 48, async (g) => {
    const name = `bench-gw-${String(g).padStart(4, '0')}`;
    const member = (k: number) => `bench-node-${String(g * MEMBERS + k).padStart(5, '0')}`;
    await kube.create(RESOURCES.gateways, {
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name },
      spec: { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, endpoints: [0, 1].flatMap((k) => [{ nodeName: member(k), type: 'tunnel', underNAT: true }, { nodeName: member(k), type: 'proxy', underNAT: true }]) },
    });
  });
  await kube.create(RESOURCES.configMaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'raven-cfg', namespace: 'kube-system' }, data: { 'enable-l3-tunnel': 'true', 'enable-l7-proxy': 'true' } });
}

type ElectedView = { metadata: { name: string; resourceVersion?: string }; elected: boolean };

/** The bench's own view of every Gateway's status, from one watch (polling lists would load the apiserver it measures). */
function watchElections(kube: KubeClient): { informer: Informer<ElectedView>; elected: () => number } {
  const elected = new Set<string>();
  const informer = new Informer<ElectedView>({
    kube, log: createLogger('bench', { level: 'warn' }), type: RESOURCES.gateways,
    transform: (raw) => {
      const g = raw as { metadata: { name: string; resourceVersion?: string }; status?: { activeEndpoints?: unknown[] } };
      return { metadata: { name: g.metadata.name, resourceVersion: g.metadata.resourceVersion }, elected: (g.status?.activeEndpoints ?? []).length === 2 };
    },
  });
  const track = (g: ElectedView) => (g.elected ? elected.add(g.metadata.name) : elected.delete(g.metadata.name));
  informer.on({ add: track, update: (_o, g) => track(g), delete: (g) => elected.delete(g.metadata.name) });
  return { informer, elected: () => elected.size };
}

async function clearStatuses(kube: KubeClient, elected: () => number): Promise<void> {
  const names = [...Array(GATEWAYS).keys()].map((g) => `bench-gw-${String(g).padStart(4, '0')}`);
  await inBatches(names, 16, (name) => kube.patch(RESOURCES.gateways, { name, subresource: 'status' }, { status: null }, 'merge'));
  await waitFor('statuses cleared', async () => elected() === 0, 60_000, 50);
}

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function conversions(kube: KubeClient): Promise<number> {
  return metricValue(await kube.requestText('GET', '/metrics'), 'apiserver_crd_conversion_webhook_duration_seconds_count');
}

function startPickup(cluster: ClusterInfo, extraArgs: string[]): Promise<AppProcess> {
  return startApp('gateway-pickup', {
    access: cluster, serviceAccount: 'raven-gateway-pickup', waitReady: false,
    args: ['--controllers=gatewaypickup,gatewaydns,gatewayinternalservice,gatewaypublicservice', '--leader-elect=false', `--resync-period=${RESYNC_S}s`, `--log-level=${process.env.BENCH_PICKUP_LOG_LEVEL ?? 'warn'}`, ...extraArgs],
  });
}

export async function run(): Promise<void> {
  console.log(`gateway-pickup benchmark: ${NODES} nodes, ${GATEWAYS} gateways x ${MEMBERS} members, real kube-apiserver; ${ROUNDS} cold starts`);
  const dir = mkdtempSync(join(tmpdir(), 'raven-bench-pickup-'));
  const cluster = await startCluster({ dir });
  const controlPlane = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { pids: Record<string, number> };
  const kube = await adminClient(cluster.info());
  const view = watchElections(kube);
  try {
    await populate(kube);
    view.informer.start();
    await view.informer.waitForSync();
    const coldStarts: number[] = [];
    let rssPeak = 0;
    let pickup: AppProcess | undefined;
    // Each round: a fresh process against the populated cluster, every Gateway's status cleared first.
    // BENCH_PICKUP_VARIANTS="--workers=4|--workers=16" compares flag sets, alternating round by round.
    const variants = (process.env.BENCH_PICKUP_VARIANTS ?? '').split('|').map((v) => v.split(' ').filter(Boolean));
    const byVariant = variants.map(() => [] as number[]);
    for (let round = 1; round <= ROUNDS; round++) {
      const variant = (round - 1) % variants.length;
      await clearStatuses(kube, view.elected);
      const conversionsBefore = await conversions(kube);
      const cpuBefore = Object.fromEntries(Object.entries(controlPlane.pids).map(([name, pid]) => [name, cpuSeconds(pid)]));
      const started = performance.now();
      pickup = await startPickup(cluster.info(), variants[variant]!);
      const proc = pickup.proc;
      await waitFor('every gateway elected', async () => {
        proc.assertRunning();
        return view.elected() === GATEWAYS;
      }, 120_000, 10);
      const seconds = (performance.now() - started) / 1000;
      coldStarts.push(seconds);
      byVariant[variant]!.push(seconds);
      rssPeak = Math.max(rssPeak, peakRssMB(proc.pid));
      const cpu = Object.entries(controlPlane.pids).map(([name, pid]) => `${name} ${(cpuSeconds(pid) - cpuBefore[name]!).toFixed(1)}`);
      const converted = (await conversions(kube)) - conversionsBefore;
      console.log(`round ${round}/${ROUNDS}${variants.length > 1 ? ` [${variants[variant]!.join(' ')}]` : ''}: all ${GATEWAYS} statuses written ${seconds.toFixed(2)} s after start; CPU s: pickup ${cpuSeconds(proc.pid).toFixed(1)}, ${cpu.join(', ')}; conversion webhook calls ${converted}; load ${loadavg()[0]!.toFixed(1)} (log ${pickup.logFile})`);
      if (round < ROUNDS) await pickup.stop();
    }
    if (!pickup) throw new Error('BENCH_ROUNDS must be at least 1');
    const app = pickup;

    const scrape = async () => {
      const text = await app.metrics();
      const writes = ['POST', 'PUT', 'PATCH', 'DELETE'].reduce((sum, verb) => sum + metricValue(text, 'raven_pickup_api_requests_total', { verb }), 0);
      return { text, writes, resyncs: metricValue(text, 'raven_pickup_resyncs_total', { controller: 'gatewaypickup' }) };
    };
    // The last round's process stays: let it finish what the start changed (the Events of 1,000 elections, the DNS
    // ConfigMap) and a first resync, then measure clean resyncs one after another.
    let last = await scrape();
    await waitFor('writes to settle', async () => {
      const now = await scrape();
      const quiet = now.writes === last.writes && now.resyncs > 0;
      last = now;
      return quiet;
    }, 300_000, 3_000);
    await waitFor('a resync', async () => (await scrape()).resyncs > last.resyncs, (RESYNC_S + 30) * 1000, 500);
    const resyncSeconds: number[] = [];
    const writesPerResync: number[] = [];
    for (let i = 0; i < RESYNCS; i++) {
      const before = await scrape();
      await waitFor(`resync ${i + 1}/${RESYNCS}`, async () => (await scrape()).resyncs > before.resyncs, (RESYNC_S + 30) * 1000, 500);
      const after = await scrape();
      resyncSeconds.push(metricValue(after.text, 'raven_pickup_last_resync_duration_seconds', { controller: 'gatewaypickup' }));
      writesPerResync.push(after.writes - before.writes);
    }
    rssPeak = Math.max(rssPeak, peakRssMB(app.proc.pid));
    await app.stop();
    printReport(`gateway-pickup, ${NODES} nodes / ${GATEWAYS} gateways`, [
      ...(variants.length > 1 ? variants.map((v, i) => ({ what: `cold start with ${v.join(' ') || 'defaults'}`, samples: byVariant[i]!, unit: 's' })) : []),
      { what: 'cold start: process start to all statuses written', samples: coldStarts, unit: 's', goal: { op: '<=', value: COLD_START_GOAL_S } },
      { what: 'one full resync, nothing changed', samples: resyncSeconds, unit: 's', goal: { op: '<=', value: 2 } },
      { what: `API writes during those ${RESYNCS} resyncs`, value: writesPerResync.reduce((a, b) => a + b, 0), exact: true, unit: 'writes', goal: { op: '<=', value: 0 } },
      // Peak RSS is a maximum over every round, not a noisy sample: judged as it stands.
      { what: 'peak RSS (highest of every round)', value: rssPeak, exact: true, unit: 'MB', goal: { op: '<=', value: 300 } },
    ]);
  } finally {
    await view.informer.stop();
    kube.close();
    await cluster.destroy();
  }
}
