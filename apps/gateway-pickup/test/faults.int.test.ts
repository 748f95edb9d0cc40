import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LABELS } from '@raven/api-types';
import type { KubeClient } from '@raven/controller-kit';
import { adminClient, registerNode, setNodeReady, startCluster, waitFor, type Cluster } from '@raven/testbed';
import { activeIds, applyRavenConfig, createGateway, startPickup, waitForGateway, type PickupProcess } from './support.ts';

// This file restarts the apiserver, so it brings its own control plane instead of the shared one.
let cluster: Cluster;
let kube: KubeClient;
let pickup: PickupProcess;

beforeAll(async () => {
  cluster = await startCluster({ dir: mkdtempSync(join(tmpdir(), 'raven-faults-')) });
  kube = await adminClient(cluster.info());
  await applyRavenConfig(kube, { l3: true, l7: true });
  for (const [name, ip] of [['fa', '10.96.50.1'], ['fb', '10.96.50.2']] as const) await registerNode(kube, { name, internalIP: ip, podCIDRs: [], labels: { [LABELS.gateway]: 'gw-fault' } });
  await createGateway(kube, 'gw-fault', { tunnelConfig: { Replicas: 1 }, proxyConfig: { Replicas: 0 }, endpoints: [{ nodeName: 'fa', type: 'tunnel' }, { nodeName: 'fb', type: 'tunnel' }] });
  pickup = await startPickup(cluster.info());
}, 120_000);

afterAll(async () => {
  await pickup?.stop();
  kube?.close();
  await cluster?.destroy();
});

describe('faults', () => {
  it('recovers from an apiserver restart without restarting, with informers restarted, and converges', async () => {
    await waitForGateway(kube, 'gw-fault', 'fa', (g) => activeIds(g).join() === 'tunnel/fa');
    await cluster.controlPlane.stopApiserver();
    await new Promise((r) => setTimeout(r, 3_000));
    await cluster.controlPlane.startApiserver();
    kube.close();
    kube = await adminClient(cluster.info());
    await setNodeReady(kube, 'fa', 'False');
    const { ms } = await waitForGateway(kube, 'gw-fault', 'fb after the restart', (g) => activeIds(g).join() === 'tunnel/fb', 30_000);
    console.log(`after the apiserver came back, the change converged in ${ms.toFixed(0)} ms`);
    expect(pickup.proc.running).toBe(true);
    const metrics = await pickup.metrics();
    expect(Number(/raven_pickup_informer_restarts_total\{resource="nodes",reason="error"\} (\d+)/.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
  });

  it('keeps serving /healthz while the apiserver is down, and /readyz stays truthful', async () => {
    await cluster.controlPlane.stopApiserver();
    try {
      const health = await fetch(`http://127.0.0.1:${pickup.healthPort}/healthz`);
      expect(health.status).toBe(200);
      const ready = await fetch(`http://127.0.0.1:${pickup.healthPort}/readyz`);
      expect(await ready.text()).toContain('[+]informers-synced ok');
    } finally {
      await cluster.controlPlane.startApiserver();
    }
    await waitFor('readyz', async () => (await fetch(`http://127.0.0.1:${pickup.healthPort}/readyz`)).status === 200, 10_000);
  });
});
