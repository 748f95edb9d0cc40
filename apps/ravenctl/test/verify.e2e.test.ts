import { spawn } from 'node:child_process';
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_DIAGNOSE_PATH, PORTS, agentDiagnoseSchema } from '@raven/api-types';
import { kubectl, RavenBox, realWalkthroughTopology, startCluster, TSX_LOADER, waitFor, WALKTHROUGH_NODES, WORKSPACE_ROOT, type Cluster, type ClusterInfo } from '@raven/testbed';
import { ravenctlProcess } from './support.ts';

/**
 * `ravenctl verify` and `benchmark` on the real-node box (kubelets, containerd, kube-proxy, Raven's L3 and L7), as an
 * operator runs them: the shipped program against the cluster's kubeconfig. Faults are injected on purpose and must
 * be found and named.
 */
let controlPlane: Cluster;
let cluster: ClusterInfo;
let rb: RavenBox;
const kc = (args: string[], input?: string) => kubectl(cluster.kubeconfig, args, input);
const ravenctl = (args: string[]) => ravenctlProcess(args, { KUBECONFIG: cluster.kubeconfig });
const { hzGateway: HZ_GATEWAY, hzMember: HZ_MEMBER } = WALKTHROUGH_NODES;

const probeNamespaces = async () => (await kc(['get', 'namespaces', '-o', 'jsonpath={range .items[*]}{.metadata.name}={.status.phase} {end}'])).split(' ').filter((n) => n.startsWith('raven-probe-'));
/** Every probe namespace is gone or going: each run cleans up after itself. */
const probesCleanedUp = async () => (await probeNamespaces()).every((n) => n.endsWith('=Terminating'));
const hzEndpoints = async () => JSON.stringify(JSON.parse(await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', 'jsonpath={.spec.endpoints}'])));

beforeAll(async () => {
  controlPlane = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-verify-cp-')) });
  cluster = controlPlane.info();
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-verify-')), cluster, realNodes: true, topology: realWalkthroughTopology() });
  await rb.waitConverged(120_000);
  const edge = rb.box.nodes.filter((n) => n.domain !== 'cloud').map((n) => n.name);
  await waitFor('the apiserver reaching every edge kubelet', async () => (await Promise.all(edge.map((n) => kc(['get', '--raw', `/api/v1/nodes/${n}/proxy/healthz`]).catch(() => '')))).every((a) => a === 'ok'), 90_000, 500);
}, 400_000);

afterAll(async () => {
  await rb?.down();
  await controlPlane?.destroy();
}, 180_000);

describe('ravenctl verify', () => {
  it('passes the whole matrix on a healthy cluster: pod to pod, large packets, ClusterIPs across domains, L7 to every edge node by name', async () => {
    const t = Date.now();
    const r = await ravenctl(['verify', '-o', 'json']);
    console.log(`verify took ${((Date.now() - t) / 1000).toFixed(1)} s`);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { healthy: boolean; sites: { node: string; role: string }[]; rounds: { rows: { kind: string; to: string; state: string; detail: string }[] }[] };
    expect(report.healthy).toBe(true);
    // A gateway and a member in each of the three Gateways' domains.
    expect(report.sites.map((s) => s.role).sort()).toEqual(['gateway', 'gateway', 'gateway', 'member', 'member', 'member']);
    const rows = report.rounds[0]!.rows;
    expect(new Set(rows.map((row) => row.kind))).toEqual(new Set(['pod', 'large', 'service', 'l7']));
    // Every edge node, the one in no Gateway too (walkthrough 2.3's conflicting IP), reached through the apiserver.
    expect(rows.filter((row) => row.kind === 'l7').map((row) => row.to).sort()).toEqual(rb.box.nodes.filter((n) => n.domain !== 'cloud').map((n) => n.name).sort());
    expect(rows.find((row) => row.kind === 'l7' && row.to === HZ_GATEWAY)?.detail).toContain('kubectl logs');
    expect(await probesCleanedUp()).toBe(true);
  });

  it('names the node whose routes were deleted (its agent stopped, so nothing repairs them) and passes again once repaired', async () => {
    const agent = rb.agents.get(HZ_MEMBER)!;
    process.kill(agent.pid, 'SIGSTOP');
    try {
      await rb.box.node(HZ_MEMBER).exec('ip', ['route', 'flush', 'table', '9027']);
      const r = await ravenctl(['verify']);
      expect(r.code, r.stdout + r.stderr).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`PROBLEM  ${HZ_MEMBER} \\(member of gw-hangzhou\\) reaches no other domain while its neighbour does`));
      expect(r.stdout).toContain(`the tunnel-agent log on ${HZ_MEMBER}`);
      // Only that node's checks failed, to it or from it: the other probes reach each other.
      const failed = r.stdout.split('\n').filter((l) => /\s(FAIL|UNKNOWN)\s/.test(l)).map((l) => l.split(/\s+/));
      expect(failed.length).toBeGreaterThan(0);
      expect(failed.filter((cols) => cols[0] !== HZ_MEMBER && cols[2] !== HZ_MEMBER)).toEqual([]);
      expect(r.stdout.match(/^PROBLEM/gm)).toHaveLength(1);
    } finally {
      process.kill(agent.pid, 'SIGCONT');
    }
    await waitFor('the agent repairs its routes', async () => (await rb.box.node(HZ_MEMBER).exec('ip', ['route', 'show', 'table', '9027'])).stdout.includes('raven0'), 45_000, 500);
    const again = await ravenctl(['verify']);
    expect(again.code, again.stdout).toBe(0);
    // The agent's own report (its health port, as `ravenctl diagnose` reads it through the pod proxy) shows the repair as drift.
    const { stdout } = await rb.box.node(HZ_MEMBER).exec('timeout', ['5', 'busybox', 'wget', '-q', '-O', '-', `http://127.0.0.1:${PORTS.health}${AGENT_DIAGNOSE_PATH}`]);
    const routes = agentDiagnoseSchema.parse(JSON.parse(stdout)).subsystems.find((sub) => sub.name === 'routes')!;
    expect(routes.driftRepairs).toBeGreaterThanOrEqual(1);
    expect(routes.lastDrift?.addedSample.join('\n')).toMatch(/table 9027/);
  });

  it('--disruptive fails a Gateway over, times the election, runs the matrix again and restores the Gateway', async () => {
    const gw = JSON.parse(await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', 'json'])) as { spec: { endpoints: object[] } };
    const endpoints = [...gw.spec.endpoints, { nodeName: HZ_MEMBER, underNAT: true, port: 4500, type: 'tunnel' }];
    await kc(['patch', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '--type=merge', '-p', JSON.stringify({ spec: { endpoints } })]);
    await waitFor('the standby published its key', async () => (await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-hangzhou', '-o', `jsonpath={.spec.endpoints[?(@.nodeName=="${HZ_MEMBER}")].config.publicKey}`])).trim().length > 0, 30_000, 250);
    const before = await hzEndpoints();
    const r = await ravenctl(['verify', '--disruptive', '-o', 'json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const report = JSON.parse(r.stdout) as { failover: { gateway: string; from: string; to: string; electedAfterSeconds: number }; rounds: { rows: { state: string }[] }[] };
    console.log(`verify --disruptive: ${report.failover.gateway} ${report.failover.from} -> ${report.failover.to} in ${report.failover.electedAfterSeconds} s`);
    expect(report.failover).toMatchObject({ gateway: 'gw-hangzhou', from: HZ_GATEWAY, to: HZ_MEMBER });
    expect(report.rounds).toHaveLength(2);
    expect(report.rounds[1]!.rows.every((row) => row.state === 'ok')).toBe(true);
    expect(await hzEndpoints()).toBe(before);
  });

  it('cleans up when interrupted: SIGINT during --disruptive restores the Gateway and deletes the probes', async () => {
    const before = await hzEndpoints();
    const program = process.env.RAVEN_APP_MODE === 'bundle' ? [join(WORKSPACE_ROOT, 'dist/apps/ravenctl/main.js')] : ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/ravenctl/src/main.ts')];
    const child = spawn(process.execPath, [...program, 'verify', '--disruptive'], { env: { PATH: process.env.PATH, HOME: '/nonexistent', KUBECONFIG: cluster.kubeconfig }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitFor('the failover to start', async () => stderr.includes('failover: removing'), 90_000, 100);
    expect(await hzEndpoints()).not.toBe(before);
    child.kill('SIGINT');
    expect(await exited, stderr).toBe(130);
    expect(await hzEndpoints()).toBe(before);
    expect(await probesCleanedUp()).toBe(true);
  });
});

describe('the other commands on the box', () => {
  it('show, graph, diagnose and gather read the real-node cluster; diagnose finds only what the box does on purpose', async () => {
    const show = await ravenctl(['show']);
    expect(show.code, show.stderr).toBe(0);
    for (const gw of ['gw-cloud', 'gw-hangzhou', 'gw-qingdao']) expect(show.stdout).toContain(gw);
    const graph = await ravenctl(['graph', '-f', 'svg']);
    expect(graph.code, graph.stderr).toBe(0);
    expect(graph.stdout).toMatch(/^<\?xml|^<svg/);
    const diagnose = await ravenctl(['diagnose', '-o', 'json']);
    const findings = (JSON.parse(diagnose.stdout) as { findings: { severity: string; check: string; object: string }[] }).findings;
    // The box runs one gateway-pickup without leader election, and walkthrough 2.3's node in no Gateway.
    expect(findings.filter((f) => f.severity !== 'info').map((f) => `${f.severity} ${f.check} ${f.object}`).sort())
      .toEqual(['warning node-gateway-label node/edge-lone-1', 'warning pickup-leader lease/kube-system/raven-gateway-pickup']);
    const dir = mkdtempSync(join(tmpdir(), 'raven-gather-'));
    const archive = join(dir, 'bundle.tar.gz');
    const gather = await ravenctl(['gather', '--file', archive]);
    expect(gather.code, gather.stderr).toBe(0);
    expect(statSync(archive).size).toBeGreaterThan(1_000);
  });
});

describe('ravenctl benchmark', () => {
  it('measures throughput and latency between two domains with Pods', async () => {
    const r = await ravenctl(['benchmark', '--from', 'gw-qingdao', '--to', 'gw-hangzhou', '--size', '64', '-o', 'json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const result = JSON.parse(r.stdout) as { from: { gateway: string }; to: { gateway: string }; bytes: number; mbitPerSecond: number; rttMs: { avg: number }; relayedVia?: string };
    console.log(`benchmark qingdao -> hangzhou: ${result.mbitPerSecond.toFixed(0)} Mbit/s, RTT ${result.rttMs.avg} ms, relayed via ${result.relayedVia}`);
    expect(result.from.gateway).toBe('gw-qingdao');
    expect(result.to.gateway).toBe('gw-hangzhou');
    expect(result.bytes).toBe(64 * 2 ** 20);
    expect(result.mbitPerSecond).toBeGreaterThan(10);
    expect(result.rttMs.avg).toBeGreaterThan(0);
    // Both domains are behind NAT: the cloud gateway relays.
    expect(result.relayedVia).toBe('gw-cloud');
    expect(await probesCleanedUp()).toBe(true);
  });
});

describe('a stopped proxy-client (last: it stays stopped)', () => {
  it('verify names the L7 failures to its domain and diagnose its stale heartbeat', async () => {
    const qingdao = (await kc(['get', 'gateways.v1beta1.raven.openyurt.io', 'gw-qingdao', '-o', 'jsonpath={.status.activeEndpoints[?(@.type=="proxy")].nodeName}'])).trim();
    await rb.proxies.get(`proxy-client/${qingdao}`)!.stop(2_000);
    const qdNodes = rb.box.nodes.filter((n) => n.domain === 'qingdao').map((n) => n.name);
    const v = await ravenctl(['verify', '-o', 'json']);
    expect(v.code).toBe(1);
    const report = JSON.parse(v.stdout) as { rounds: { rows: { kind: string; to: string; state: string }[]; explanations: { problem: string; fix: string }[] }[] };
    const failed = report.rounds[0]!.rows.filter((r) => r.state !== 'ok');
    // L3 is untouched; only the apiserver's calls to qingdao's kubelets fail.
    expect(failed.map((r) => `${r.kind} ${r.to}`).sort()).toEqual(qdNodes.map((n) => `l7 ${n}`).sort());
    for (const e of report.rounds[0]!.explanations) expect(e.fix).toContain('proxy heartbeats of gw-qingdao');
    await waitFor('the proxy heartbeat to expire', async () => (await ravenctl(['diagnose'])).stdout.includes(`proxy-client on ${qingdao} stopped heartbeating`), 30_000, 1_000);
  });
});
