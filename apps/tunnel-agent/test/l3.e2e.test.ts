import { mkdtempSync, readdirSync, readlinkSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS, RAVEN_CFG_KEYS, SYSTEM_NAMESPACE, gatewayV1beta1Schema } from '@raven/api-types';
import { RESOURCES } from '@raven/controller-kit';
import { RavenBox, missingMonitoredMetrics, startCluster, waitFor, type BoxHost, type BoxNode, type Cluster, type ConnectivityPair } from '@raven/testbed';
import { isEmptyState, ravenKernelState } from './support.ts';

// This suite stops the apiserver for a minute, so it brings its own control plane.
let cluster: Cluster;
let rb: RavenBox;
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const CLOUD_MEMBER = 'izwz9ey0js5z7mornclpd6z';
const HZ_GW = 'izbp15inok0kbfkg3in52rz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const QD_MEMBER = 'izm5eb24dmjfimuaybpnqzz';
const QD_GW = 'izm5eb24dmjfimuaybpnr0z';

const node = (name: string): BoxNode => rb.box.node(name);
const upNodes = () => rb.box.nodes.filter((n) => n.isUp);

/** Every pod to every other pod, and every node to every node of the other domains. */
function fullMatrix(): ConnectivityPair[] {
  const nodes = upNodes();
  const pods = nodes.flatMap((a) => nodes.filter((b) => b !== a).map((b) => ({ from: a.pod as BoxHost, to: b.pod as BoxHost, expect: true })));
  const hosts = nodes.flatMap((a) => nodes.filter((b) => b.domain !== a.domain).map((b) => ({ from: a as BoxHost, to: b as BoxHost, expect: true })));
  return [...pods, ...hosts];
}

async function expectMatrixPasses(label: string): Promise<void> {
  const rows = await rb.box.connectivityMatrix(fullMatrix(), { count: 3 });
  const failed = rows.filter((r) => !r.reachable || r.lossPercent > 0).map((r) => `${r.from} -> ${r.toLabel}: ${r.lossPercent}% loss`);
  console.log(`${label}: ${rows.length - failed.length}/${rows.length} pairs at 0% loss`);
  if (failed.length > 0) {
    for (const n of upNodes()) {
      const dump = await n.exec('sh', ['-c', 'wg show 2>&1; ip rule; ip route show table 9027; ip route show table 9028']).then((r) => r.stdout, (e: Error) => e.message);
      console.log(`--- ${n.name}\n${dump}`);
    }
  }
  expect(failed.join('\n')).toBe('');
}

beforeAll(async () => {
  cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-l3-cp-')) });
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-l3-box-')), cluster: cluster.info() });
  await rb.waitConverged();
}, 180_000);

afterAll(async () => {
  await rb?.down();
  await cluster?.destroy();
}, 120_000);

describe('the L3 data path in the box (walkthrough topology, WireGuard)', () => {
  it('connects every pod to every pod and every node to the nodes of other domains, NAT to NAT relayed through the cloud', async () => {
    await expectMatrixPasses('connectivity matrix');
  });

  it('runs the pinned wireguard-go, with TUN segmentation offload, on every gateway', async () => {
    for (const gw of [CLOUD_GW, HZ_GW, QD_GW]) {
      const netns = statSync(`/run/netns/${node(gw).netns}`).ino;
      const exeOf = (pid: string) => {
        try {
          return statSync(`/proc/${pid}/ns/net`).ino === netns ? readlinkSync(`/proc/${pid}/exe`) : undefined;
        } catch {
          return undefined; // exited meanwhile
        }
      };
      const daemons = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).map(exeOf).filter((exe) => exe?.endsWith('/wireguard-go'));
      expect(daemons).toEqual([rb.wireguardGo]);
      expect((await node(gw).exec('ethtool', ['-k', 'raven-wg0'])).stdout).toMatch(/^tcp-segmentation-offload: on$/m);
    }
  });

  it('sends cross-domain traffic through the gateways (vxlan raven0, then the tunnel)', async () => {
    const atGateway = await rb.box.capture({ at: node(HZ_GW), iface: 'raven0', filter: 'icmp', count: 2, timeoutMs: 5_000 });
    const atRelay = await rb.box.capture({ at: node(CLOUD_GW), iface: 'raven-wg0', filter: 'icmp', count: 2, timeoutMs: 5_000 });
    await rb.box.ping({ from: node(HZ_MEMBER), to: node(QD_MEMBER), count: 2 });
    const [hz, relay] = await Promise.all([atGateway.done, atRelay.done]);
    expect(hz.join('\n')).toContain(`${node(HZ_MEMBER).internalIP} > ${node(QD_MEMBER).internalIP}: ICMP echo request`);
    expect(relay.join('\n')).toContain(`${node(HZ_MEMBER).internalIP} > ${node(QD_MEMBER).internalIP}: ICMP echo request`);
  });

  it('reports per-peer reachability and RTT in the Gateway status and in metrics', async () => {
    await waitFor('gw-hangzhou connections', async () => {
      const gw = gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name: 'gw-hangzhou' }));
      const byPeer = Object.fromEntries((gw.status?.connections ?? []).map((c) => [c.gateway, c]));
      return byPeer['gw-cloud']?.status === 'Connected' && byPeer['gw-qingdao']?.status === 'Connected' && byPeer['gw-qingdao']?.relayedVia === 'gw-cloud'
        && /ms$/.test(byPeer['gw-qingdao']?.latencyRTT?.average ?? '');
    }, 30_000, 500);
    // Every tunnel uses the preshared key derived from the PSK Secret.
    const psks = (await node(CLOUD_GW).exec('wg', ['show', 'raven-wg0', 'preshared-keys'])).stdout.trim().split('\n');
    expect(psks.length).toBeGreaterThanOrEqual(2);
    for (const line of psks) expect(line.split('\t')[1]).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    const metrics = (await rb.agentHealth(HZ_GW, '/metrics')).body;
    expect(metrics).toMatch(/raven_tunnel_peer_reachable\{peer="gw-qingdao"\} 1/);
    expect(metrics).toMatch(/raven_tunnel_peer_handshake_age_seconds\{peer="gw-cloud"\} \d/);
    expect(metrics).toMatch(/raven_tunnel_role\{role="gateway"\} 1/);
    expect(missingMonitoredMetrics('tunnel-agent', metrics)).toEqual([]);
  });

  it('repairs what someone else changed in the kernel within one resync period (30 s), not only on events', async () => {
    const gw = node(HZ_GW);
    const qdSubnet = node(QD_MEMBER).podCIDR;
    const has = async () => {
      const routes = (await gw.exec('ip', ['route', 'show', 'table', '9028'])).stdout;
      const set = (await gw.exec('ipset', ['list', 'raven-mark-set'])).stdout;
      return routes.includes(`${qdSubnet} dev raven-wg0`) && set.includes(`\n${qdSubnet}\n`);
    };
    expect(await has()).toBe(true);
    await gw.exec('ip', ['route', 'del', qdSubnet, 'table', '9028']);
    await gw.exec('ipset', ['del', 'raven-mark-set', qdSubnet]);
    const started = Date.now();
    await waitFor('the route and the set member back', has, 40_000, 250);
    console.log(`foreign kernel change repaired after ${Date.now() - started} ms (resync period 30 s)`);
  });

  it('keeps every packet of a 100 pps ping across agent restarts (SIGTERM and SIGKILL)', async () => {
    const ping = rb.box.ping({ from: node(HZ_MEMBER).pod, to: node(QD_MEMBER).pod, count: 800, intervalMs: 10, timeoutMs: 2_000 });
    await new Promise((r) => setTimeout(r, 800));
    for (const [name, signal] of [[HZ_GW, 'SIGTERM'], [CLOUD_GW, 'SIGKILL'], [HZ_MEMBER, 'SIGKILL'], [QD_GW, 'SIGTERM']] as const) {
      await rb.restartAgent(name, signal);
      await new Promise((r) => setTimeout(r, 1_200));
    }
    const result = await ping;
    console.log(`hitless restart: ${result.sent} sent, ${result.received} received across 4 agent restarts`);
    expect(result.sent).toBe(800);
    expect(result.received).toBe(800);
    await rb.waitConverged();
    for (const name of [HZ_GW, CLOUD_GW]) expect(rb.agentLog(name)).toMatch(/"kernel":\{"added":0,"removed":0,"changed":0\},"vpnChanged":false/);
  });

  it('fails over to a standby tunnel endpoint when the active gateway node goes down (outage measured)', async () => {
    await rb.kube.patch(RESOURCES.gateways, { name: 'gw-hangzhou' }, [{ op: 'add', path: '/spec/endpoints/-', value: { nodeName: HZ_MEMBER, underNAT: true, port: 4500, type: 'tunnel' } }], 'json');
    const standbyKey = await waitFor('the standby published its key', async () => {
      const gw = gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name: 'gw-hangzhou' }));
      return gw.spec?.endpoints?.find((e) => e.nodeName === HZ_MEMBER && e.type === 'tunnel')?.config?.publicKey;
    }, 15_000);
    // A warm standby has its tunnel to the central gateway up before it is ever needed.
    await waitFor('the standby handshook with the central gateway', async () => {
      const { stdout } = await node(CLOUD_GW).exec('wg', ['show', 'raven-wg0', 'latest-handshakes']);
      return stdout.split('\n').some((l) => l.startsWith(standbyKey) && !l.endsWith('\t0'));
    }, 30_000, 250);
    const intervalMs = 50;
    const ping = rb.box.ping({ from: node(CLOUD_MEMBER).pod, to: node(HZ_MEMBER).pod, count: 240, intervalMs, timeoutMs: 2_000, measureGaps: true });
    await new Promise((r) => setTimeout(r, 2_000));
    const downAt = new Date();
    await rb.box.nodeDown(HZ_GW);
    console.log(`node ${HZ_GW} down at ${downAt.toISOString()} (took ${Date.now() - downAt.getTime()} ms)`);
    const result = await ping;
    const outageMs = result.longestGapMs ?? Infinity;
    const iso = (t?: number) => (t ? new Date(t).toISOString() : '?');
    console.log(`last reply before the outage ${iso(result.gapBetween?.[0])}, first after ${iso(result.gapBetween?.[1])}`);
    console.log(`failover: outage ${outageMs} ms (longest run of lost echoes at ${1000 / intervalMs} pps; ${result.sent - result.received} of ${result.sent} echoes lost)`);
    expect(result.received).toBeGreaterThan(0);
    expect(outageMs).toBeLessThanOrEqual(3_000);
    await expectMatrixPasses('after failover');
  });

  it('brings the failed node back as a warm standby member (the new gateway stays: stickiness)', async () => {
    await rb.box.nodeUp(HZ_GW);
    await rb.restartAgent(HZ_GW, 'SIGKILL');
    await waitFor('old gateway is a member again', async () => /raven_tunnel_role\{role="member"\} 1/.test((await rb.agentHealth(HZ_GW, '/metrics')).body), 30_000, 250);
    const state = await ravenKernelState(node(HZ_GW));
    expect(state.links.join(' ')).toMatch(/raven0.*raven-wg0|raven-wg0.*raven0/);
    expect(state.routes.filter((r) => r.includes('raven-wg0'))).toEqual([]);
    await expectMatrixPasses('after the node returned');
  });

  it('removes the matching kernel state when L3 is disabled, a node leaves its Gateway, or a Gateway is deleted', async () => {
    await rb.kube.patch(RESOURCES.configMaps, { namespace: SYSTEM_NAMESPACE, name: 'raven-cfg' }, { data: { [RAVEN_CFG_KEYS.l3Tunnel]: 'false' } }, 'merge');
    let leftover: unknown;
    await waitFor('no Raven state on any node', async () => {
      const states = await Promise.all(upNodes().map(async (n) => [n.name, await ravenKernelState(n)] as const));
      leftover = states.filter(([, st]) => !isEmptyState(st));
      return states.every(([, st]) => isEmptyState(st));
    }, 30_000, 250).catch((err: Error) => {
      throw new Error(`${err.message}; left: ${JSON.stringify(leftover)}`);
    });
    await rb.kube.patch(RESOURCES.configMaps, { namespace: SYSTEM_NAMESPACE, name: 'raven-cfg' }, { data: { [RAVEN_CFG_KEYS.l3Tunnel]: 'true' } }, 'merge');
    await rb.waitConverged();
    await expectMatrixPasses('after re-enabling L3');

    await rb.kube.patch(RESOURCES.nodes, { name: QD_MEMBER }, { metadata: { labels: { [LABELS.gateway]: null } } }, 'merge');
    await waitFor('the unlabelled node has no Raven state', async () => isEmptyState(await ravenKernelState(node(QD_MEMBER))), 30_000, 250);

    await rb.kube.delete(RESOURCES.gateways, { name: 'gw-qingdao' });
    await waitFor('the deleted Gateway’s nodes have no state, and nobody routes to it', async () => {
      const qd = await ravenKernelState(node(QD_GW));
      const hz = await ravenKernelState(node(HZ_MEMBER));
      return isEmptyState(qd) && !hz.routes.join('\n').includes('10.224.2.') && !(await rb.box.node(HZ_MEMBER).exec('ipset', ['list', 'raven-mark-set'])).stdout.includes('10.224.2.');
    }, 30_000, 250);
  });
});
