// NAT traversal: hangzhou and qingdao (both behind NAT) pod to pod, over the direct path that --nat-traversal punches
// against the relay through the cloud gateway, alternated in one run. The relay is forced the way it happens in the
// field: both routers turn symmetric (MASQUERADE --random-fully), which upstream's rules never punch. With
// BENCH_CLOUD_DELAY_MS the cloud router's internet link gets that much netem delay, as a remote cloud would add; the
// default is 0 because kernels without CONFIG_NET_SCH_NETEM (this machine's) have no netem.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gatewayV1beta1Schema } from '@raven/api-types';
import { RESOURCES } from '@raven/controller-kit';
import { RavenBox, startCluster, waitFor, walkthroughTopology, type ManagedProcess } from '@raven/testbed';
import { printReport } from './report.ts';
import { alternate, pairedDifferences, pairedRatios, summarize } from './stats.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 4);
const CLOUD_DELAY_MS = Number(process.env.BENCH_CLOUD_DELAY_MS ?? 0);
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const QD_MEMBER = 'izm5eb24dmjfimuaybpnqzz';

interface Sample {
  rttMs: number;
  mbps: number;
  /** Bytes the cloud gateway forwarded from hangzhou's member pod subnet to qingdao's during the transfer. */
  relayedBytes: number;
}

export async function run(): Promise<void> {
  console.log(`NAT benchmark: hangzhou member pod -> qingdao member pod, ping 50 x 20 ms and iperf3 ${SECONDS} s per path, ${ROUNDS} rounds alternated, ${CLOUD_DELAY_MS} ms added on the cloud link`);
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-nat-cp-')) });
  let rb: RavenBox | undefined;
  let server: ManagedProcess | undefined;
  try {
    rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-nat-box-')), cluster: cluster.info(), topology: walkthroughTopology(), agentArgs: ['--nat-traversal'] });
    await rb.waitConverged(90_000);
    const box = rb.box;
    const kube = rb.kube;
    if (CLOUD_DELAY_MS > 0) await box.setRouterWanDelay('cloud', CLOUD_DELAY_MS);
    server = box.node(QD_MEMBER).spawn('iperf3', ['-s'], { name: 'iperf3-nat', inPod: true });
    const from = box.node(HZ_MEMBER).pod;
    const to = box.node(QD_MEMBER).podIP;
    const direct = async () => {
      const gws = await Promise.all(['gw-hangzhou', 'gw-qingdao'].map(async (g) => gatewayV1beta1Schema.parse(await kube.get(RESOURCES.gateways, { name: g }))));
      const [hz, qd] = [gws[0]!.status?.connections?.find((c) => c.gateway === 'gw-qingdao'), gws[1]!.status?.connections?.find((c) => c.gateway === 'gw-hangzhou')];
      return [hz, qd].every((c) => c?.status === 'Connected') ? [hz, qd].every((c) => c?.relayedVia === undefined) : undefined;
    };
    let current: boolean | undefined;
    /** Both routers to the NAT that gives the path; ms until both Gateways report it. Rounds alternate A B, B A. */
    const mode = async (wantDirect: boolean) => {
      if (current === wantDirect) return undefined;
      const nat = wantDirect ? 'masquerade' : 'symmetric';
      await Promise.all([box.setRouterNat('hangzhou', nat), box.setRouterNat('qingdao', nat)]);
      const t = Date.now();
      await waitFor(wantDirect ? 'the direct path' : 'the relay', async () => (await direct()) === wantDirect, 120_000, 200);
      const took = Date.now() - t;
      // The switch flushed both routers' conntrack: a relayed peer is reachable again once its next keepalive has
      // made a new mapping (up to 5 s), which is no part of the path's cost.
      await waitFor('traffic through the new path', async () => (await box.ping({ from, to, count: 1, timeoutMs: 500 })).lossPercent === 0, 20_000, 200);
      current = wantDirect;
      return took;
    };
    const measure = async (): Promise<Sample> => {
      const ping = await box.ping({ from, to, count: 50, intervalMs: 20 });
      if (ping.rttAvgMs === undefined || ping.lossPercent > 0) throw new Error(`ping lost ${ping.lossPercent}%`);
      const count = () => box.forwardedBytes(CLOUD_GW, box.node(HZ_MEMBER).podCIDR, box.node(QD_MEMBER).podCIDR);
      const before = await count();
      const { stdout } = await from.exec('iperf3', ['-c', to, '-t', String(SECONDS), '-J', '-O', '1']);
      const mbps = (JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } }).end.sum_received.bits_per_second / 1e6;
      return { rttMs: ping.rttAvgMs, mbps, relayedBytes: (await count()) - before };
    };
    const switchMs: number[] = [];
    const paths = {
      direct: async () => {
        const fromRelay = current === false;
        const took = await mode(true);
        if (fromRelay && took !== undefined) switchMs.push(took);
        return measure();
      },
      relayed: async () => {
        await mode(false);
        return measure();
      },
    };
    const runs = await alternate(paths, ROUNDS, (round, v) => console.log(`  round ${round + 1}/${ROUNDS}: direct ${v.direct.rttMs.toFixed(2)} ms ${v.direct.mbps.toFixed(0)} Mbit/s (cloud forwarded ${v.direct.relayedBytes} B), relayed ${v.relayed.rttMs.toFixed(2)} ms ${v.relayed.mbps.toFixed(0)} Mbit/s (cloud forwarded ${v.relayed.relayedBytes} B)`));
    const of = (k: keyof typeof paths, f: keyof Sample) => runs[k].map((s) => s[f]);
    printReport(`NAT traversal, hangzhou pod -> qingdao pod (${CLOUD_DELAY_MS} ms added on the cloud link)`, [
      { what: 'RTT, direct', samples: of('direct', 'rttMs'), unit: 'ms' },
      { what: 'RTT, relayed through the cloud gateway', samples: of('relayed', 'rttMs'), unit: 'ms' },
      { what: 'RTT saved by the direct path (paired)', samples: pairedDifferences(of('relayed', 'rttMs'), of('direct', 'rttMs')), unit: 'ms' },
      { what: 'throughput, direct', samples: of('direct', 'mbps'), unit: 'Mbit/s' },
      { what: 'throughput, relayed', samples: of('relayed', 'mbps'), unit: 'Mbit/s' },
      { what: 'ratio direct / relayed throughput (paired)', samples: pairedRatios(of('direct', 'mbps'), of('relayed', 'mbps')), unit: 'x' },
      { what: 'bytes the cloud gateway forwarded, direct', samples: of('direct', 'relayedBytes'), unit: 'B' },
      { what: 'bytes the cloud gateway forwarded, relayed', samples: of('relayed', 'relayedBytes'), unit: 'B' },
      { what: 'relay to direct after both NATs turned cone-like', samples: switchMs, unit: 'ms' },
    ]);
    console.log(`\nRTT saved by the direct path ${summarize(pairedDifferences(of('relayed', 'rttMs'), of('direct', 'rttMs'))).median.toFixed(1)} ms`);
  } finally {
    await server?.stop(1_000).catch(() => undefined);
    await rb?.down();
    await cluster.destroy();
  }
}
