// Planner + kernel apply for a gateway with 5,000 remote subnets (1,000 remote gateways x 5), in a throw-away
// network namespace: on events (unchanged subsystems skipped), on resync (every subsystem read back), at 10 % churn.
// Prints one JSON line with the timings; `npm run bench -- tunnel` runs it.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { addAddress, createBridge, createNetns, setLinkUp } from '@raven/testbed';
import { DataPathApplier } from '../src/datapath.ts';
import { planDataPath, type PlanInput } from '../src/planner.ts';

const REMOTE_GATEWAYS = Number(process.env.BENCH_REMOTE_GATEWAYS ?? 1_000);
const SUBNETS_EACH = 5;

function gateways(churn = 0): Gateway[] {
  const local = gatewayV1beta1Schema.parse({
    apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw-local' },
    spec: { endpoints: [{ nodeName: 'self', type: 'tunnel', underNAT: false, publicIP: '198.18.0.1' }] },
    status: {
      activeEndpoints: [{ nodeName: 'self', type: 'tunnel', port: 4500, underNAT: false, publicIP: '198.18.0.1', config: { 'enable-l3-tunnel': 'true' } }],
      nodes: [{ nodeName: 'self', privateIP: '172.30.0.2', subnets: ['10.0.0.0/24'] }, ...Array.from({ length: 10 }, (_, i) => ({ nodeName: `m${i}`, privateIP: `172.30.0.${10 + i}`, subnets: [`10.0.${1 + i}.0/24`] }))],
    },
  });
  const remote = Array.from({ length: REMOTE_GATEWAYS }, (_, g) => {
    const third = (s: number) => `10.${64 + Math.floor(g / 50)}.${(g % 50) * 5 + s}.${churn && g < REMOTE_GATEWAYS * churn ? 128 : 0}/25`;
    return gatewayV1beta1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: `gw-${g}` },
      status: {
        activeEndpoints: [{ nodeName: `n${g}`, type: 'tunnel', port: 4500, underNAT: false, publicIP: `100.64.${Math.floor(g / 250)}.${g % 250}`, config: { 'enable-l3-tunnel': 'true', publicKey: Buffer.alloc(32, g % 256).toString('base64') } }],
        nodes: [{ nodeName: `n${g}`, privateIP: `172.31.${Math.floor(g / 250)}.${g % 250}`, subnets: Array.from({ length: SUBNETS_EACH }, (_, s) => third(s)) }],
      },
    });
  });
  return [local, ...remote];
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
/** CPU of this process's finished (reaped) children: fields 16 and 17 of /proc/self/stat. */
function childrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  return ((Number(fields[13]) + Number(fields[14])) * 1_000) / CLK_TCK;
}

const ns = await createNetns('rvbench');
try {
  await createBridge(ns, 'eth0', {});
  await addAddress(ns, 'eth0', '172.30.0.2/24');
  await setLinkUp(ns, 'eth0');
  await createBridge(ns, 'raven-wg0', {}); // stands in for the WireGuard device, which the VPN driver creates
  const input = (churn: number): PlanInput => ({
    nodeName: 'self', memberOf: 'gw-local', gateways: gateways(churn), l3Enabled: true,
    host: { privateIP: '172.30.0.2', underlayDevice: 'eth0', underlayMtu: 1500 }, forwardNodeIP: false, driver: 'wireguard', keepaliveSeconds: 5,
  });
  const applier = new DataPathApplier(ns.exec);
  // verify: what the agent does on each resync (reads every subsystem back); otherwise what it does on an event.
  const timed = async (churn: number, verify = false) => {
    const planInput = input(churn); // parsing Gateways happens in the informer, not in planning
    const cpu0 = process.cpuUsage();
    const children0 = childrenCpuMs();
    const t0 = performance.now();
    const plan = planDataPath(planInput);
    const t1 = performance.now();
    const summary = await applier.apply(plan, { verify });
    const t2 = performance.now();
    const cpu = process.cpuUsage(cpu0);
    // CPU of this process and of the tools it ran (ip, ipset, iptables-restore): the work itself, which a quiet
    // machine would wait for, whatever the load of this one.
    const cpuMs = (cpu.user + cpu.system) / 1_000 + childrenCpuMs() - children0;
    return { planMs: t1 - t0, applyMs: t2 - t1, totalMs: t2 - t0, cpuMs, summary, remotePrefixes: plan.remotePrefixes.length };
  };
  // First apply once; then alternate no-op rounds, verify rounds (nothing changed, kernel read back) and 10 % churn
  // rounds (to the churned set and back), so each figure has samples taken under the same drifting machine load.
  const rounds = Number(process.env.BENCH_PLAN_ROUNDS ?? 20);
  const first = await timed(0, true);
  const noop: number[] = [];
  const noopPlan: number[] = [];
  const noopCpu: number[] = [];
  const verify: number[] = [];
  const churn: number[] = [];
  const churnCpu: number[] = [];
  let churned = false;
  for (let round = 0; round < rounds; round++) {
    const quiet = await timed(churned ? 0.1 : 0);
    noop.push(quiet.totalMs);
    noopPlan.push(quiet.planMs);
    noopCpu.push(quiet.cpuMs);
    verify.push((await timed(churned ? 0.1 : 0, true)).totalMs);
    churned = !churned;
    const changed = await timed(churned ? 0.1 : 0);
    churn.push(changed.totalMs);
    churnCpu.push(changed.cpuMs);
  }
  console.log(JSON.stringify({ first: first.totalMs, noop, noopPlan, noopCpu, verify, churn, churnCpu, remotePrefixes: first.remotePrefixes }));
} finally {
  await ns.destroy();
}
