// L3 data path throughput: iperf3 pod to pod across domains through our tunnel (the pinned wireguard-go with TUN
// offloads), against bare links between the same two gateway namespaces run by the same wireguard-go and by Debian's
// 0.0.20220316, alternated in one run; CPU of the wireguard-go daemons per Gbit/s; then planner + kernel apply for
// 6,000 remote prefixes.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RavenBox, WORKSPACE_ROOT, binaryPath, startCluster, type BoxHost, type BoxNode, type ManagedProcess } from '@raven/testbed';
import { printReport } from './report.ts';
import { alternate, pairedRatios, summarize } from './stats.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const STREAMS = Number(process.env.BENCH_STREAMS ?? 1);
const DEBIAN_WIREGUARD_GO = process.env.BENCH_DEBIAN_WIREGUARD_GO ?? '/usr/bin/wireguard-go';
const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const HZ_GW = 'izbp15inok0kbfkg3in52rz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const CLOUD_MEMBER = 'izwz9ey0js5z7mornclpd6z';

interface BareLink {
  device: string;
  binary: string;
  port: number;
  /** Tunnel addresses: server .1, client .2 of a /30. */
  net: string;
}

/** A plain wireguard-go link between two gateway nodes, configured by hand: a baseline. */
async function bareWireguard(server: BoxNode, client: BoxNode, serverPublicIP: string, link: BareLink): Promise<void> {
  const keys = async (n: BoxNode) => {
    const priv = (await n.exec('wg', ['genkey'])).stdout.trim();
    const pub = (await n.exec('sh', ['-c', `echo ${priv} | wg pubkey`])).stdout.trim();
    await n.exec('sh', ['-c', `umask 077; echo ${priv} > ${n.stateDir}/${link.device}.key`]);
    return pub;
  };
  for (const n of [server, client]) await n.exec(link.binary, [link.device]);
  const [serverKey, clientKey] = [await keys(server), await keys(client)];
  const ip = (host: number) => `${link.net}.${host}`;
  await server.exec('wg', ['set', link.device, 'listen-port', String(link.port), 'private-key', `${server.stateDir}/${link.device}.key`, 'peer', clientKey, 'allowed-ips', `${ip(2)}/32`]);
  await client.exec('wg', ['set', link.device, 'private-key', `${client.stateDir}/${link.device}.key`, 'peer', serverKey, 'endpoint', `${serverPublicIP}:${link.port}`, 'allowed-ips', `${ip(1)}/32`, 'persistent-keepalive', '5']);
  for (const [n, host] of [[server, 1], [client, 2]] as const) {
    await n.exec('ip', ['addr', 'add', `${ip(host)}/30`, 'dev', link.device]);
    await n.exec('ip', ['link', 'set', link.device, 'mtu', '1420', 'up']);
  }
}

/** CPU seconds (user + system, all threads) used so far by the wireguard-go daemons serving `device` in these nodes. */
function daemonCpuSeconds(nodes: BoxNode[], device: string): number {
  const netns = new Set(nodes.map((n) => statSync(`/run/netns/${n.netns}`).ino));
  let ticks = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (!netns.has(statSync(`/proc/${pid}/ns/net`).ino)) continue;
      if (!readlinkSync(`/proc/${pid}/exe`).endsWith('wireguard-go')) continue;
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')[1] !== device) continue;
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ');
      ticks += Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15 of stat)
    } catch {
      // exited meanwhile
    }
  }
  return ticks / CLK_TCK;
}

interface Sample {
  mbps: number;
  /** Cores the two gateways' wireguard-go daemons kept busy per Gbit/s carried. */
  coresPerGbps: number;
}

async function iperf(client: BoxHost, serverIP: string, gateways: BoxNode[], device: string): Promise<Sample> {
  const cpu0 = daemonCpuSeconds(gateways, device);
  const t0 = performance.now();
  const { stdout } = await client.exec('iperf3', ['-c', serverIP, '-t', String(SECONDS), '-P', String(STREAMS), '-J', '-O', '1']);
  const seconds = (performance.now() - t0) / 1_000;
  const cores = (daemonCpuSeconds(gateways, device) - cpu0) / seconds;
  const result = JSON.parse(stdout) as { end: { sum_received: { bits_per_second: number } } };
  const mbps = result.end.sum_received.bits_per_second / 1e6;
  return { mbps, coresPerGbps: cores / (mbps / 1_000) };
}

export async function run(): Promise<void> {
  const wireguardGo = binaryPath('wireguard-go');
  const version = (bin: string) => execFileSync(bin, ['--version'], { encoding: 'utf8' }).split('\n')[0];
  console.log(`tunnel benchmark: iperf3 ${SECONDS} s x ${ROUNDS} rounds per path, ${STREAMS} stream(s), paths alternated round by round, cluster in a box`);
  console.log(`  ours and bare: ${version(wireguardGo)} (${wireguardGo}); debian: ${version(DEBIAN_WIREGUARD_GO)} (${DEBIAN_WIREGUARD_GO})`);
  const cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-tunnel-cp-')) });
  let rb: RavenBox | undefined;
  const servers: ManagedProcess[] = [];
  try {
    rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-bench-tunnel-box-')), cluster: cluster.info(), wireguardGo });
    await rb.waitConverged(90_000);
    const node = (n: string) => rb!.box.node(n);
    const gateways = [node(CLOUD_GW), node(HZ_GW)];
    const bare: BareLink = { device: 'bench-wg0', binary: wireguardGo, port: 51820, net: '10.250.0' };
    const debian: BareLink = { device: 'bench-wg1', binary: DEBIAN_WIREGUARD_GO, port: 51821, net: '10.250.1' };
    for (const link of [bare, debian]) {
      await bareWireguard(node(CLOUD_GW), node(HZ_GW), '198.18.0.11', link);
      servers.push(node(CLOUD_GW).spawn('iperf3', ['-s', '-B', `${link.net}.1`], { name: `iperf3-${link.device}` }));
    }
    servers.push(node(CLOUD_GW).spawn('iperf3', ['-s'], { name: 'iperf3-pod', inPod: true }));
    servers.push(node(CLOUD_MEMBER).spawn('iperf3', ['-s'], { name: 'iperf3-member', inPod: true }));
    await new Promise((r) => setTimeout(r, 1_000));
    const paths = {
      bare: () => iperf(node(HZ_GW), `${bare.net}.1`, gateways, bare.device),
      debian: () => iperf(node(HZ_GW), `${debian.net}.1`, gateways, debian.device),
      ours: () => iperf(node(HZ_GW).pod, node(CLOUD_GW).podIP, gateways, 'raven-wg0'),
      viaVxlan: () => iperf(node(HZ_MEMBER).pod, node(CLOUD_MEMBER).podIP, gateways, 'raven-wg0'),
    };
    const runs = await alternate(paths, ROUNDS, (round, v) => console.log(`  round ${round + 1}/${ROUNDS} (Mbit/s): bare ${v.bare.mbps.toFixed(0)}, debian ${v.debian.mbps.toFixed(0)}, ours ${v.ours.mbps.toFixed(0)}, via vxlan ${v.viaVxlan.mbps.toFixed(0)}`));
    const mbps = (k: keyof typeof paths) => runs[k].map((r) => r.mbps);
    const cpu = (k: keyof typeof paths) => runs[k].map((r) => r.coresPerGbps);

    const oursOverDebian = pairedRatios(mbps('ours'), mbps('debian'));
    const planApply = JSON.parse(execFileSync(process.execPath, ['--import', 'tsx', join(WORKSPACE_ROOT, 'apps/tunnel-agent/bench/plan-apply.ts')], { encoding: 'utf8' })) as {
      first: number; noop: number[]; noopPlan: number[]; noopCpu: number[]; verify: number[]; churn: number[]; churnCpu: number[]; remotePrefixes: number;
    };
    printReport('L3 data path (hangzhou gateway pod -> cloud gateway pod, NAT in between)', [
      { what: 'debian wireguard-go, gateway to gateway (bare)', samples: mbps('debian'), unit: 'Mbit/s' },
      { what: 'bare wireguard-go (ours), gateway to gateway', samples: mbps('bare'), unit: 'Mbit/s' },
      { what: 'our tunnel, gateway pod to gateway pod', samples: mbps('ours'), unit: 'Mbit/s' },
      { what: 'ratio ours / debian wireguard-go (paired by round)', samples: oursOverDebian, unit: 'x', goal: { op: '>=', value: 3 } },
      { what: 'ratio ours / bare (paired by round)', samples: pairedRatios(mbps('ours'), mbps('bare')), unit: 'x', goal: { op: '>=', value: 0.95 } },
      { what: 'our tunnel, non-gateway pods (vxlan + tunnel)', samples: mbps('viaVxlan'), unit: 'Mbit/s' },
      { what: 'ratio non-gateway pods / gateway pods', samples: pairedRatios(mbps('viaVxlan'), mbps('ours')), unit: 'x', goal: { op: '>=', value: 0.9 } },
      { what: 'gateways\' wireguard-go CPU per Gbit/s, ours', samples: cpu('ours'), unit: 'cores' },
      { what: 'gateways\' wireguard-go CPU per Gbit/s, debian', samples: cpu('debian'), unit: 'cores' },
      { what: `plan + apply, ${planApply.remotePrefixes} remote prefixes, first`, value: planApply.first, unit: 'ms' },
      { what: 'plan + apply, nothing changed (an event)', samples: planApply.noop, unit: 'ms', goal: { op: '<=', value: 100 } },
      { what: '  of which planning', samples: planApply.noopPlan, unit: 'ms' },
      { what: '  CPU time of that no-op (what a quiet machine waits)', samples: planApply.noopCpu, unit: 'ms' },
      { what: 'plan + apply, nothing changed, kernel read back (resync)', samples: planApply.verify, unit: 'ms' },
      { what: 'plan + apply, 10% of the subnets changed', samples: planApply.churn, unit: 'ms', goal: { op: '<=', value: 500 } },
      { what: '  CPU time of that apply (agent and the tools it ran)', samples: planApply.churnCpu, unit: 'ms' },
    ]);
    console.log(`\nratio ours / debian wireguard-go  ${summarize(oursOverDebian).median.toFixed(2)} x`);
  } finally {
    for (const s of servers) await s.stop(1_000).catch(() => undefined);
    await rb?.down();
    await cluster.destroy();
  }
}
