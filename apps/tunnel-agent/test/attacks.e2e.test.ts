import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANNOTATIONS, HEARTBEAT, gatewayV1beta1Schema, heartbeatLeaseName, type Gateway } from '@raven/api-types';
import { ApiError, KubeClient, RESOURCES } from '@raven/controller-kit';
import { RavenBox, boundKubeconfig, deletePod, kubeletKubeconfig, startCluster, waitFor, type BoxHost, type Cluster, type ConnectivityPair } from '@raven/testbed';

/**
 * The L3 attack scenarios of a compromised edge node, in the box, each with the credentials such a node really
 * holds: its tunnel-agent's ServiceAccount token bound to the agent Pod on that node, or its kubelet's client
 * certificate (system:node:<name>). Each attack must fail with a clear error or Event while traffic keeps flowing.
 */
let cluster: Cluster;
let rb: RavenBox;
const HZ = 'gw-hangzhou';
const QD = 'gw-qingdao';
const CLOUD_GW = 'izwz9dohcv74iegqecp4axz';
const HZ_GW = 'izbp15inok0kbfkg3in52rz';
const HZ_MEMBER = 'izbp15inok0kbfkg3in52sz';
const QD_GW = 'izm5eb24dmjfimuaybpnr0z';
const QD_MEMBER = 'izm5eb24dmjfimuaybpnqzz';
const dir = mkdtempSync(join(tmpdir(), 'raven-attacks-'));
const pods: string[] = [];
const clients: KubeClient[] = [];

/** The agent token of `node`, bound to a Pod there, as the DaemonSet's projected token is. */
const agents = new Map<string, KubeClient>();
async function agentOf(node: string): Promise<KubeClient> {
  const known = agents.get(node);
  if (known) return known;
  const bound = await boundKubeconfig(rb.kube, cluster.info(), 'raven-tunnel-agent', node, dir, 'attacker');
  pods.push(bound.pod);
  const client = await KubeClient.load({ kubeconfig: bound.kubeconfig, userAgent: 'compromised-agent' });
  clients.push(client);
  agents.set(node, client);
  return client;
}

async function kubeletOf(node: string): Promise<KubeClient> {
  const client = await KubeClient.load({ kubeconfig: await kubeletKubeconfig(cluster.info(), node, dir), userAgent: 'compromised-kubelet' });
  clients.push(client);
  return client;
}

async function refused(call: Promise<unknown>, status: number, words: RegExp): Promise<ApiError> {
  const err = await call.then(() => undefined, (e: unknown) => e);
  expect(err, 'the apiserver accepted it').toBeInstanceOf(ApiError);
  expect((err as ApiError).status, (err as ApiError).message).toBe(status);
  expect((err as ApiError).message).toMatch(words);
  return err as ApiError;
}

const gateway = async (name: string) => gatewayV1beta1Schema.parse(await rb.kube.get(RESOURCES.gateways, { name }));
const endpointIndex = async (name: string, node: string) => (await gateway(name)).spec!.endpoints!.findIndex((e) => e.nodeName === node && e.type === 'tunnel');

/** Pod to pod across all three domains, both directions, plus the NATed member to member path. */
async function expectTrafficFlows(label: string): Promise<void> {
  const nodes = rb.box.nodes.filter((n) => n.isUp);
  const pairs: ConnectivityPair[] = nodes.flatMap((a) => nodes.filter((b) => b.domain !== a.domain).map((b) => ({ from: a.pod as BoxHost, to: b.pod as BoxHost, expect: true })));
  const rows = await rb.box.connectivityMatrix(pairs, { count: 2 });
  const failed = rows.filter((r) => !r.reachable || r.lossPercent > 0).map((r) => `${r.from} -> ${r.toLabel}: ${r.lossPercent}% loss`);
  console.log(`${label}: ${rows.length - failed.length}/${rows.length} cross-domain pod pairs at 0% loss`);
  expect(failed.join('\n')).toBe('');
}

beforeAll(async () => {
  // The forgery scenario kills an agent and waits out its Lease; a private control plane keeps that from others.
  cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-attacks-cp-')) });
  rb = await RavenBox.up({ dir: mkdtempSync(join(tmpdir(), 'raven-attacks-box-')), cluster: cluster.info() });
  await rb.waitConverged();
}, 180_000);

afterAll(async () => {
  for (const client of clients) client.close();
  for (const pod of pods) await deletePod(rb.kube, pod).catch(() => undefined);
  await rb?.down();
  await cluster?.destroy();
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

describe('attacks with a compromised edge node\'s credentials, in the box', () => {
  it('publicKey injection: the gateway\'s agent token cannot smuggle WireGuard config through its key, nor touch another node\'s key', async () => {
    const agent = await agentOf(HZ_GW);
    const qdPods = rb.box.node(QD_MEMBER).podCIDR;
    const ownKey = (await gateway(HZ)).spec!.endpoints![await endpointIndex(HZ, HZ_GW)]!.config!.publicKey!;
    const injected = `${ownKey}\nAllowedIPs = ${qdPods}\nEndpoint = 198.18.0.66:4500`;
    const before = await gateway(HZ);
    const err = await refused(agent.patch(RESOURCES.gateways, { name: HZ }, [
      { op: 'replace', path: `/spec/endpoints/${await endpointIndex(HZ, HZ_GW)}/config/publicKey`, value: injected },
    ], 'json'), 422, /config\.publicKey must be a WireGuard public key/);
    console.log(`injection refused: ${err.message}`);
    // A well-formed key for the victim's endpoint: the admission policy binds the token to its own node.
    await refused(agent.patch(RESOURCES.gateways, { name: QD }, [
      { op: 'replace', path: `/spec/endpoints/${await endpointIndex(QD, QD_GW)}/config/publicKey`, value: `${'E'.repeat(42)}A=` },
    ], 'json'), 403, /may change only config\.publicKey and natType of its own tunnel endpoint/);
    expect((await gateway(HZ)).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    // No peer of the central gateway was given the victim's pod CIDR through the attacker.
    const { stdout } = await rb.box.node(CLOUD_GW).exec('wg', ['show', 'raven-wg0', 'allowed-ips']);
    const peersWithVictimPods = stdout.split('\n').filter((line) => line.includes(qdPods));
    expect(peersWithVictimPods).toHaveLength(1);
    expect(peersWithVictimPods[0]).toContain((await gateway(QD)).spec!.endpoints![await endpointIndex(QD, QD_GW)]!.config!.publicKey!);
    await expectTrafficFlows('after the injection attempts');
  });

  it('the annotation that cuts the cluster off: its agent and kubelet may not write it; set anyway, pickup refuses it with a condition and a Warning Event, and nothing is routed', async () => {
    const hostile = { metadata: { annotations: { [ANNOTATIONS.extraAllowedSourceCIDRs]: '0.0.0.0/1,128.0.0.0/1' } } };
    await refused((await agentOf(HZ_GW)).patch(RESOURCES.gateways, { name: HZ }, hostile, 'merge'), 403, /may not change a Gateway's labels, annotations/);
    await refused((await kubeletOf(HZ_GW)).patch(RESOURCES.gateways, { name: HZ }, hostile, 'merge'), 403, /forbidden/i);
    // The second layer: whoever sets it (an admin's mistake, another compromised path), pickup must not route it.
    await rb.kube.patch(RESOURCES.gateways, { name: HZ }, hostile, 'merge');
    try {
      const condition = await waitFor('the refusal in the Gateway status', async () => (await gateway(HZ)).status?.conditions?.find((c) => c.type === 'ExtraAllowedSourceCIDRsAccepted' && c.status === 'False'), 30_000, 250);
      expect(condition.message).toMatch(/"0\.0\.0\.0\/1" is wider than \/8; "128\.0\.0\.0\/1" is wider than \/8/);
      type Event = { reason: string; type: string; note: string; regarding: { name: string } };
      await waitFor('the Warning Event', async () => (await rb.kube.list<Event>(RESOURCES.events, { namespace: 'default' })).items
        .some((e) => e.regarding.name === HZ && e.type === 'Warning' && e.reason === 'ExtraAllowedSourceCIDRsRefused'), 15_000, 250);
      const status: Gateway = await gateway(HZ);
      expect(status.status?.nodes?.flatMap((n) => n.subnets ?? [])).not.toContain('0.0.0.0/1');
      // Give the agents a resync's worth of chances to act on it, then look at every node's kernel.
      await sleep(3_000);
      for (const node of rb.box.nodes) {
        const { stdout } = await node.exec('ip', ['-4', 'route', 'show', 'table', 'all']);
        expect(stdout, node.name).not.toMatch(/^(0\.0\.0\.0|128\.0\.0\.0)\/1 /m);
      }
      for (const node of rb.box.nodes) expect((await rb.agentHealth(node.name, '/readyz')).status, `agent on ${node.name} still reaches the apiserver`).toBe(200);
      await expectTrafficFlows('with the hostile annotation in place');
    } finally {
      await rb.kube.patch(RESOURCES.gateways, { name: HZ }, { metadata: { annotations: { [ANNOTATIONS.extraAllowedSourceCIDRs]: null } } }, 'merge');
    }
  });

  it('heartbeat forgery: another node\'s agent cannot keep a dead gateway elected; the standby takes over and traffic flows', async () => {
    // hz gets a standby, so there is something to fail over to.
    await rb.kube.patch(RESOURCES.gateways, { name: HZ }, [{ op: 'add', path: '/spec/endpoints/-', value: { nodeName: HZ_MEMBER, underNAT: true, port: 4500, type: 'tunnel' } }], 'json');
    await waitFor('the standby published its key', async () => (await gateway(HZ)).spec?.endpoints?.find((e) => e.nodeName === HZ_MEMBER && e.type === 'tunnel')?.config?.publicKey, 20_000, 250);
    const forger = await agentOf(QD_MEMBER);
    const leaseName = heartbeatLeaseName('tunnel', HZ_GW);
    // The agent Role grants get/create/update on Leases: the forger reads the victim's Lease and writes it back renewed.
    type Lease = { metadata: Record<string, unknown>; spec: Record<string, unknown> };
    const renew = async () => {
      const lease = await forger.get<Lease>(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: leaseName });
      return forger.replace(RESOURCES.leases, { namespace: HEARTBEAT.namespace, name: leaseName }, {
        ...lease, spec: { ...lease.spec, holderIdentity: HZ_GW, renewTime: new Date().toISOString().replace('Z', '000Z') },
      });
    };
    await refused(renew(), 403, /must be the Lease raven-tunnel-/);
    await refused(forger.create(RESOURCES.leases, {
      apiVersion: 'coordination.k8s.io/v1', kind: 'Lease',
      metadata: { name: `raven-tunnel-forged-${QD_MEMBER}`.slice(0, 63), namespace: HEARTBEAT.namespace, labels: { [HEARTBEAT.label]: 'tunnel' } },
      spec: { holderIdentity: HZ_GW, leaseDurationSeconds: 3_600, renewTime: new Date().toISOString().replace('Z', '000Z') },
    }), 403, /must be the Lease raven-tunnel-/);

    // The gateway's agent dies (its Node stays Ready); the forger keeps renewing its Lease for it.
    const diedAt = Date.now();
    await rb.agents.get(HZ_GW)!.kill();
    let refusals = 0;
    let forging = true;
    const forgery = (async () => {
      while (forging) {
        await renew().then(() => { throw new Error('a forged renewal was accepted'); }, (err: unknown) => {
          if (!(err instanceof ApiError) || err.status !== 403) throw err;
          refusals += 1;
        });
        await sleep(300);
      }
    })();
    try {
      await waitFor('the standby elected', async () => (await gateway(HZ)).status?.activeEndpoints?.some((e) => e.type === 'tunnel' && e.nodeName === HZ_MEMBER), 30_000, 100);
      console.log(`standby elected ${Date.now() - diedAt} ms after the agent died, through ${refusals} refused forged renewals`);
    } finally {
      forging = false;
      await forgery;
    }
    expect(refusals).toBeGreaterThan(0);
    // Its agent comes back and serves the node as a member.
    rb.startAgent(rb.box.node(HZ_GW));
    await waitFor('the old gateway is a member', async () => /raven_tunnel_role\{role="member"\} 1/.test((await rb.agentHealth(HZ_GW, '/metrics')).body), 30_000, 250);
    await waitFor('hz connected again', async () => {
      const connections = (await gateway(HZ)).status?.connections ?? [];
      return connections.length === 2 && connections.every((c) => c.status === 'Connected');
    }, 60_000, 250);
    await expectTrafficFlows('after the failover');
  });
});
