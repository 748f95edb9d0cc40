// L3 data path throughput: iperf3 pod to pod across domains through our tunnel, against bare wireguard-go between
// the same two gateway namespaces, in one run; then planner + kernel apply for 5,000 remote subnets.
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RavenBox, WORKSPACE_ROOT, startCluster, type BoxHost, type BoxNode, type ManagedProcess } from '@raven/testbed';
import { printReport } from './report.ts';
import { alternate, pairedRatios } from './stats.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const HZ_GW = 'izbp15inok0kbfkg3in52rz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const CLOUD_MEMBER = 'izwz9ey0js5z7mornclpd6z';

/** A plain wireguard-go link between two gateway nodes, configured by hand: the baseline. */
async function bareWireguard(server: BoxNode, client: BoxNode, serverPublicIP: string): Promise<void> {
  const keys = async (n: BoxNode) => {
    const priv = (await n.exec('wg', ['genkey'])).stdout.trim();
    const pub = (await n.exec('sh', ['-c', `echo ${priv} | wg pubkey`])).stdout.trim();
    await n.exec('sh', ['-c', `umask 077; echo ${priv} > ${n.stateDir}/bench-wg.key`]);
    return pub;
  };
  for (const n of [server, client]) await n.exec('wireguard-go', ['bench-wg0']);
  const [serverKey, clientKey] = [await keys(server), await keys(client)];
  await server.exec('wg', ['set', 'bench-wg0', 'listen-port', '51820', 'private-key', `${server.stateDir}/bench-wg.key`, 'peer', clientKey, 'allowed-ips', '10.250.0.2/32']);
  await client.exec('wg', ['set', 'bench-wg0', 'private-key', `${client.stateDir}/bench-wg.key`, 'peer', serverKey, 'endpoint', `${serverPublicIP}:51820`, 'allowed-ips', '10.250.0.1/32', 'persistent-keepalive', '5']);
  for (const [n, ip] of [[server, '10.250.0.1/30'], [client, '10.250.0.2/30']] as const) {
    await n.exec('ip', ['addr', 'add', ip, 'dev', 'bench-wg0']);
    await n.exec('ip', ['link', 'set', 'bench-wg0', 'mtu', '1420', 'up']);
  }
}

async function iperf(client: BoxHost, serverIP: string): Promise<number> {
  const { stdout } = await client.exec('iperf3', ['-c', serverIP, '-t', String(SECONDS), '-J', '-O', '1']);
  const result = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
  return result.end.sum_received.bits_per_second / 1e6;
}

export async function run(): Promise<void> {
  console.log(`tunnel benchmark: iperf3 ${SECONDS} s x ${ROUNDS} rounds per path, paths alternated round by round, cluster in a box (wireguard-go on both sides)`);
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-tunnel-cp-')) });
  let rb: RavenBox | undefined;
  const servers: ManagedProcess[] = [];
  try {
    rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-tunnel-box-')), cluster: cluster.info() });
    await rb.waitConverged(90_000);
    const node = (n: string) => rb!.box.node(n);
    await bareWireguard(node(CLOUD_GW), node(HZ_GW), '198.18.0.11');
    servers.push(node(CLOUD_GW).spawn('iperf3', ['-s', '-B', '10.250.0.1'], { name: 'iperf3-bare' }));
    servers.push(node(CLOUD_GW).spawn('iperf3', ['-s'], { name: 'iperf3-pod', inPod: true }));
    servers.push(node(CLOUD_MEMBER).spawn('iperf3', ['-s'], { name: 'iperf3-member', inPod: true }));
    await new Promise((r) => setTimeout(r, 1_000));
    const paths = {
      bare: () => iperf(node(HZ_GW), '10.250.0.1'),
      ours: () => iperf(node(HZ_GW).pod, node(CLOUD_GW).podIP),
      viaVxlan: () => iperf(node(HZ_MEMBER).pod, node(CLOUD_MEMBER).podIP),
    };
    const samples = await alternate(paths, ROUNDS, (round, v) => console.log(`  round ${round + 1}/${ROUNDS} (Mbit/s): bare ${v.bare.toFixed(0)}, ours ${v.ours.toFixed(0)}, via vxlan ${v.viaVxlan.toFixed(0)}`));

    const planApply = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', join(WORKSPACE_ROOT, 'apps/tunnel-agent/bench/plan-apply.ts')], { encoding: 'utf8' })) as { first: number; noop: number[]; churn: number[]; remotePrefixes: number };
    printReport('L3 data path (hangzhou gateway pod -> cloud gateway pod, NAT in between)', [
      { what: 'bare wireguard-go, gateway to gateway', samples: samples.bare, unit: 'Mbit/s' },
      { what: 'our tunnel, gateway pod to gateway pod', samples: samples.ours, unit: 'Mbit/s' },
      { what: 'ratio ours / bare (paired by round)', samples: pairedRatios(samples.ours, samples.bare), unit: 'x', goal: { op: '>=', value: 0.95 } },
      { what: 'our tunnel, non-gateway pods (vxlan + tunnel)', samples: samples.viaVxlan, unit: 'Mbit/s' },
      { what: 'ratio non-gateway pods / gateway pods', samples: pairedRatios(samples.viaVxlan, samples.ours), unit: 'x', goal: { op: '>=', value: 0.9 } },
      { what: `plan + apply, ${planApply.remotePrefixes} remote prefixes, first`, value: planApply.first, unit: 'ms' },
      { what: 'plan + apply, nothing changed', samples: planApply.noop, unit: 'ms', goal: { op: '<=', value: 100 } },
      { what: 'plan + apply, 10% of the subnets changed', samples: planApply.churn, unit: 'ms', goal: { op: '<=', value: 500 } },
    ]);
  } finally {
    for (const s of servers) await s.stop(1_000).catch(() => undefined);
    await rb?.down();
    await cluster.destroy();
  }
}
