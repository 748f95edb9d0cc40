import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { LABELS } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import { adminClient, deleteNode, missingMonitoredMetrics, registerNode, setNodeReady, uniqueName, waitFor } from '@raven/testbed';
import { ALL_LOOPS, activeIds, applyRavenConfig, createGateway, deleteGateway, startPickup, waitForGateway, type PickupProcess } from './support.ts';

const cluster = inject('cluster');
let kube: KubeClient;
const replicas: PickupProcess[] = [];
const lease = 'raven-gateway-pickup'; // the name the Role lets the ServiceAccount update
const gw = uniqueName('gw-le');
const [a, b] = [uniqueName('le-a'), uniqueName('le-b')];

const gauge = async (p: PickupProcess, metric: RegExp) => Number(metric.exec(await p.metrics())?.[1] ?? 0);
const isLeader = (p: PickupProcess) => gauge(p, /raven_pickup_leader_is_leader\{name="[^"]+"\} (\d+)/);
const reconciles = (p: PickupProcess) => gauge(p, /raven_pickup_reconcile_duration_seconds_count\{controller="gatewaypickup",result="success"\} (\d+)/);

beforeAll(async () => {
  kube = await adminClient(cluster);
  await applyRavenConfig(kube, { l3: true, l7: true });
  for (const [name, ip] of [[a, '10.97.0.1'], [b, '10.97.0.2']] as const) await registerNode(kube, { name, internalIP: ip, podCIDRs: [], labels: { [LABELS.gateway]: gw } });
  await createGateway(kube, gw, { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [{ nodeName: a, type: 'tunnel' }, { nodeName: b, type: 'tunnel' }] });
});

afterAll(async () => {
  for (const p of replicas) await p.stop();
  await deleteGateway(kube, gw);
  for (const n of [a, b]) await deleteNode(kube, n);
  await kube.delete(RESOURCES.leases, { namespace: 'kube-system', name: lease }).catch(() => undefined);
  kube.close();
});

describe('leader election (15 s / 10 s / 2 s Lease)', () => {
  it('lets only the leader write; after SIGKILL the standby takes over within the lease duration', async () => {
    // Every controller, so the leader exports every metric the shipped alerts and dashboard select.
    const args = [`--controllers=${ALL_LOOPS},csrapprover`, '--leader-elect=true'];
    replicas.push(await startPickup(cluster, { args, name: 'pickup-1' }));
    await waitFor('replica 1 leads', async () => (await isLeader(replicas[0]!)) === 1, 20_000);
    replicas.push(await startPickup(cluster, { args, name: 'pickup-2' }));
    const [leader, standby] = replicas as [PickupProcess, PickupProcess];
    await waitForGateway(kube, gw, 'a elected by the leader', (g) => activeIds(g).join() === `tunnel/${a}`);
    await new Promise((r) => setTimeout(r, 2_500));
    expect(await isLeader(standby)).toBe(0);
    expect(await reconciles(standby)).toBe(0);
    expect(await reconciles(leader)).toBeGreaterThan(0);
    // The shipped alerts and dashboard (k8s/components/monitoring) select only metrics the leader really exports.
    expect(missingMonitoredMetrics('gateway-pickup', await leader.metrics())).toEqual([]);

    const killedAt = Date.now();
    await leader.proc.kill();
    await waitFor('standby leads', async () => (await isLeader(standby)) === 1, 25_000, 100);
    const takeover = Date.now() - killedAt;
    console.log(`leader killed with SIGKILL; standby took over after ${takeover} ms (lease duration 15 s)`);
    expect(takeover).toBeLessThanOrEqual(15_000 + 2_000 + 1_000);

    await setNodeReady(kube, a, 'False');
    await waitForGateway(kube, gw, 'new leader fails over to b', (g) => activeIds(g).join() === `tunnel/${b}`);
  });

  it('hands the lease over at once on SIGTERM (release on shutdown)', async () => {
    replicas.push(await startPickup(cluster, { args: ['--leader-elect=true'], name: 'pickup-3' }));
    const [, leader, standby] = replicas as [PickupProcess, PickupProcess, PickupProcess];
    expect(await isLeader(leader)).toBe(1);
    const stoppedAt = Date.now();
    await leader.stop();
    await waitFor('standby leads after release', async () => (await isLeader(standby)) === 1, 10_000, 100);
    const handover = Date.now() - stoppedAt;
    console.log(`graceful handover after SIGTERM: ${handover} ms`);
    expect(handover).toBeLessThan(4_000);
  });
});
