import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Connection } from '@raven/api-types';
import { RESOURCES } from '@raven/controller-kit';
import { RavenBox, startCluster, waitFor, walkthroughTopology, type BoxHost, type BoxNode, type BoxTopology, type Cluster, type ConnectivityPair } from '@raven/testbed';

/**
 * Direct tunnels between the walkthrough's two NATed domains (`--nat-traversal`), on the box's NAT routers: cone-like
 * MASQUERADE and symmetric `--random-fully`, switched at run time. No public STUN server: the cloud gateway's agent
 * answers NAT discovery and reports the mappings it observes. A fourth Gateway, gw-hzlan, has its one node on
 * hangzhou's LAN behind hangzhou's router: two domains sharing a LAN.
 */
let cluster: Cluster;
let rb: RavenBox;
let convergedAt = 0;
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const HZ_GW = 'izbp15inok0kbfkg3in52rz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const QD_MEMBER = 'izm5eb24dmjfimuaybpnqzz';
const HZ_LAN_GW = 'hz-lan-gw';
const HZ_LAN_IP = '172.16.2.120';

/** The walkthrough, plus gw-hzlan's node on hangzhou's LAN. */
function topology(): BoxTopology {
  const t = walkthroughTopology();
  t.domains.find((d) => d.name === 'hangzhou')!.nodes.push({ name: HZ_LAN_GW, gateway: 'gw-hzlan', internalIP: HZ_LAN_IP, podCIDR: '10.224.3.0/26' });
  return t;
}

const node = (name: string): BoxNode => rb.box.node(name);
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

async function connection(from: string, to: string): Promise<Connection | undefined> {
  const gw = gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name: from }));
  return gw.status?.connections?.find((c) => c.gateway === to);
}

/** Both ends report the pair Connected and, as asked, direct (no relay) or relayed. */
async function pathIs(direct: boolean): Promise<boolean> {
  const [hz, qd] = await Promise.all([connection('gw-hangzhou', 'gw-qingdao'), connection('gw-qingdao', 'gw-hangzhou')]);
  return [hz, qd].every((c) => c?.status === 'Connected' && (direct ? c.relayedVia === undefined && !!c.endpoint : c.relayedVia === 'gw-cloud'));
}

async function waitPath(direct: boolean, what: string, timeoutMs: number): Promise<number> {
  const t = Date.now();
  await waitFor(what, () => pathIs(direct), timeoutMs, 100).catch(async (err: unknown) => {
    const dump = await Promise.all(['gw-hangzhou', 'gw-qingdao', 'gw-cloud'].map(async (g) => `${g}: ${JSON.stringify((await rb.kube.get<{ status?: unknown }>(RESOURCES.gateways, { name: g })).status)}`));
    throw new Error(`${String(err)}\n${dump.join('\n')}\n${rb.agentLog(HZ_GW).split('\n').filter((l) => /NAT|nat/.test(l)).slice(-15).join('\n')}`);
  });
  return Date.now() - t;
}

/** Bytes the cloud gateway forwarded from hangzhou's member pods to qingdao's while `traffic` ran. */
async function relayedBytesDuring(traffic: () => Promise<unknown>): Promise<number> {
  const count = () => rb.box.forwardedBytes(CLOUD_GW, node(HZ_MEMBER).podCIDR, node(QD_MEMBER).podCIDR);
  const before = await count();
  await traffic();
  return (await count()) - before;
}

const pingPods = (count = 20) => rb.box.ping({ from: node(HZ_MEMBER).pod, to: node(QD_MEMBER).pod, count, intervalMs: 50 });

async function expectMatrixPasses(label: string): Promise<void> {
  const nodes = rb.box.nodes.filter((n) => n.isUp);
  const pairs: ConnectivityPair[] = nodes.flatMap((a) => nodes.filter((b) => b.domain !== a.domain).map((b) => ({ from: a.pod as BoxHost, to: b.pod as BoxHost, expect: true })));
  const rows = await rb.box.connectivityMatrix(pairs, { count: 3 });
  const failed = rows.filter((r) => !r.reachable || r.lossPercent > 0).map((r) => `${r.from} -> ${r.toLabel}: ${r.lossPercent}% loss`);
  console.log(`${label}: ${rows.length - failed.length}/${rows.length} pod pairs at 0% loss`);
  expect(failed.join('\n')).toBe('');
}

beforeAll(async () => {
  cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-nat-cp-')) });
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-nat-box-')), cluster: cluster.info(), topology: topology(), agentArgs: ['--nat-traversal'] });
  await rb.kube.create(RESOURCES.gateways, {
    apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw-hzlan' },
    spec: { tunnelConfig: { Replicas: 1 }, endpoints: [{ nodeName: HZ_LAN_GW, underNAT: true, port: 4500, type: 'tunnel' }] },
  });
  await rb.waitConverged();
  convergedAt = Date.now();
}, 240_000);

afterAll(async () => {
  await rb?.down();
  await cluster?.destroy();
}, 120_000);

describe('NAT traversal between hangzhou and qingdao (both behind NAT)', () => {
  it('cone-like NATs (MASQUERADE): the pair goes direct within 10 s, and the cloud gateway relays none of its traffic', async () => {
    await waitPath(true, 'a direct hangzhou-qingdao path', 30_000);
    const upAfter = Date.now() - convergedAt;
    console.log(`direct path up ${seconds(upAfter)} after every gateway was up`);
    expect(upAfter).toBeLessThanOrEqual(10_000);
    for (const gw of ['gw-hangzhou', 'gw-qingdao']) {
      const spec = gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name: gw })).spec;
      expect(spec?.endpoints?.find((e) => e.type === 'tunnel')?.natType).toBe('PortRestricted');
    }
    const hz = await connection('gw-hangzhou', 'gw-qingdao');
    expect(hz?.endpoint).toBe('198.18.0.31:4500'); // qingdao's router, at the port MASQUERADE kept
    let ping: Awaited<ReturnType<typeof pingPods>> | undefined;
    const relayed = await relayedBytesDuring(async () => (ping = await pingPods()));
    expect(ping?.lossPercent).toBe(0);
    expect(relayed).toBe(0);
    expect((await rb.agentHealth(HZ_GW, '/metrics')).body).toMatch(/raven_tunnel_peer_relayed\{peer="gw-qingdao"\} 0/);
    await expectMatrixPasses('matrix with the direct path');
  });

  // The issue asks for 40 ms of netem delay on the cloud's links; this kernel has no netem (CONFIG_NET_SCH_NETEM is
  // not set), so the relay's cost here is its extra hop and two more WireGuard passes, measured in the same run.
  it('two domains on one LAN (gw-hangzhou and gw-hzlan behind one router) use their private addresses, shown in status and by tcpdump on the router', async () => {
    const lanPath = async () => {
      const [a, b] = await Promise.all([connection('gw-hangzhou', 'gw-hzlan'), connection('gw-hzlan', 'gw-hangzhou')]);
      return a?.status === 'Connected' && a.relayedVia === undefined && a.endpoint === `${HZ_LAN_IP}:4500`
        && b?.status === 'Connected' && b.relayedVia === undefined && b.endpoint === `${node(HZ_GW).internalIP}:4500`;
    };
    const t = Date.now();
    await waitFor('the LAN path in both Gateways\' status', lanPath, 30_000, 200).catch(async (err: unknown) => {
      const statuses = await Promise.all(['gw-hangzhou', 'gw-hzlan'].map(async (g) => `${g}: ${JSON.stringify((await rb.kube.get<{ status?: unknown }>(RESOURCES.gateways, { name: g })).status)}`));
      const natLines = [HZ_GW, HZ_LAN_GW].map((n) => `${n}:\n${rb.agentLog(n).split('\n').filter((l) => /NAT|nat/.test(l)).slice(-12).join('\n')}`);
      throw new Error(`${String(err)}\n${statuses.join('\n')}\n${natLines.join('\n')}`);
    });
    console.log(`LAN path in both Gateways' status ${seconds(Date.now() - t)} after the test began (${seconds(Date.now() - convergedAt)} after every gateway was up)`);
    // On hangzhou's router: its LAN bridge hands the packets to gw-hzlan's port, so they never reach its WAN side.
    const capture = await rb.box.capture({ at: rb.box.domain('hangzhou').router, iface: node(HZ_LAN_GW).routerPort, filter: `udp and src ${node(HZ_GW).internalIP} and dst ${HZ_LAN_IP} and dst port 4500`, count: 3, timeoutMs: 5_000 });
    const bytes = await (async () => {
      const count = () => rb.box.forwardedBytes(CLOUD_GW, node(HZ_MEMBER).podCIDR, node(HZ_LAN_GW).podCIDR);
      const before = await count();
      const ping = await rb.box.ping({ from: node(HZ_MEMBER).pod, to: node(HZ_LAN_GW).pod, count: 10, intervalMs: 50 });
      expect(ping.lossPercent).toBe(0);
      return (await count()) - before;
    })();
    const seen = await capture.done;
    console.log(`LAN path: ${seen.length} WireGuard packets ${node(HZ_GW).internalIP} -> ${HZ_LAN_IP}:4500 seen by tcpdump on hangzhou's router (${node(HZ_LAN_GW).routerPort}); the cloud forwarded ${bytes} B of that pair's ping`);
    expect(seen.length).toBe(3);
    expect(bytes).toBe(0);
  });

  it('RTT direct against relayed in this run, and the bytes the cloud forwarded in each mode', async () => {
    let direct: Awaited<ReturnType<typeof pingPods>> | undefined;
    const directBytes = await relayedBytesDuring(async () => (direct = await pingPods(40)));
    // Symmetric on both sides can only be relayed: the same pair, the same links, through the cloud.
    await Promise.all([rb.box.setRouterNat('hangzhou', 'symmetric'), rb.box.setRouterNat('qingdao', 'symmetric')]);
    const fellBack = await waitPath(false, 'the relayed path after both NATs turned symmetric', 60_000);
    let relayed: Awaited<ReturnType<typeof pingPods>> | undefined;
    const relayedBytes = await relayedBytesDuring(async () => (relayed = await pingPods(40)));
    console.log(`pod-to-pod RTT hangzhou -> qingdao: direct ${direct?.rttAvgMs?.toFixed(3)} ms, relayed ${relayed?.rttAvgMs?.toFixed(3)} ms; the cloud forwarded ${directBytes} B of the direct ping and ${relayedBytes} B of the relayed one; relayed in status ${seconds(fellBack)} after both NATs turned symmetric`);
    expect(direct?.lossPercent).toBe(0);
    expect(relayed?.lossPercent).toBe(0);
    expect(directBytes).toBe(0);
    expect(relayedBytes).toBeGreaterThanOrEqual(40 * 84);
    await waitFor('the relayed gauge', async () => /raven_tunnel_peer_relayed\{peer="gw-qingdao"\} 1/.test((await rb.agentHealth(HZ_GW, '/metrics')).body), 10_000, 250);
  });

  it('symmetric NAT on both sides: the pair stays relayed, status says why, and the matrix passes', async () => {
    await waitFor('both ends say why', async () => {
      const [hz, qd] = await Promise.all([connection('gw-hangzhou', 'gw-qingdao'), connection('gw-qingdao', 'gw-hangzhou')]);
      return hz?.relayReason === 'symmetric NAT on both sides' && qd?.relayReason === 'symmetric NAT on both sides';
    }, 30_000, 250);
    const spec = gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name: 'gw-hangzhou' })).spec;
    expect(spec?.endpoints?.find((e) => e.type === 'tunnel')?.natType).toBe('Symmetric');
    await expectMatrixPasses('matrix, symmetric on both sides');
  });

  it('symmetric on one side, port-restricted on the other: relayed, as upstream\'s rules say', async () => {
    await rb.box.setRouterNat('qingdao', 'masquerade');
    await waitFor('qingdao reclassified and hangzhou saying why', async () => (await connection('gw-hangzhou', 'gw-qingdao'))?.relayReason === 'symmetric NAT here and port-restricted NAT at the peer', 30_000, 250);
    expect(await pathIs(false)).toBe(true);
    await expectMatrixPasses('matrix, symmetric and port-restricted');
  });

  it('a direct path broken at one router (conntrack flushed, UDP to the peer dropped) falls back to the relay within 3 s, and comes back', async () => {
    await rb.box.setRouterNat('hangzhou', 'masquerade');
    const back = await waitPath(true, 'direct again with both NATs cone-like', 90_000);
    console.log(`direct again ${seconds(back)} after hangzhou's NAT turned cone-like`);
    const ping = rb.box.ping({ from: node(HZ_MEMBER).pod, to: node(QD_MEMBER).pod, count: 600, intervalMs: 10, timeoutMs: 2_000, measureGaps: true });
    await new Promise((r) => setTimeout(r, 1_000));
    const qingdaoWan = rb.box.topology.domains.find((d) => d.name === 'qingdao')!.wanIP;
    await rb.box.blockRouterUdp('hangzhou', true, { peer: qingdaoWan });
    const broken = Date.now();
    try {
      const result = await ping;
      console.log(`direct path broken: longest silence at 100 pps ${result.longestGapMs} ms, ${result.received}/${result.sent} answered`);
      expect(result.longestGapMs).toBeLessThanOrEqual(3_000);
      // status.connections follows within a probe round (5 s).
      await waitPath(false, 'the relay in status', 10_000);
      expect((await connection('gw-hangzhou', 'gw-qingdao'))?.relayReason).toMatch(/direct path stopped answering|punch/);
    } finally {
      await rb.box.blockRouterUdp('hangzhou', false, { peer: qingdaoWan });
    }
    const recovered = await waitPath(true, 'direct again after the router let UDP through', 90_000);
    console.log(`direct again ${seconds(Date.now() - broken)} after the break (${seconds(recovered)} after UDP was let through)`);
  });

  it('a public IP that changes: hangzhou\'s router gets a new WAN address, and the tunnels recover without a Gateway edit', async () => {
    const ping = rb.box.ping({ from: node(HZ_MEMBER).pod, to: node(QD_MEMBER).pod, count: 1_500, intervalMs: 20, timeoutMs: 2_000, measureGaps: true });
    await new Promise((r) => setTimeout(r, 1_000));
    const moved = Date.now();
    await rb.box.readdressRouterWan('hangzhou', '198.18.0.22');
    await waitFor('qingdao sees hangzhou at its new address', async () => (await connection('gw-cloud', 'gw-hangzhou'))?.endpoint?.startsWith('198.18.0.22:') === true, 60_000, 100);
    const seen = Date.now() - moved;
    const direct = await waitPath(true, 'direct again from the new address', 120_000).then(() => Date.now() - moved);
    const result = await ping;
    console.log(`hangzhou's public IP moved: the cloud saw the new mapping after ${seconds(seen)}, direct again after ${seconds(direct)}; pod ping longest silence ${result.longestGapMs} ms, ${result.received}/${result.sent} answered`);
    expect((await connection('gw-qingdao', 'gw-hangzhou'))?.endpoint).toMatch(/^198\.18\.0\.22:/);
    await expectMatrixPasses('matrix after the address change');
  });
});
