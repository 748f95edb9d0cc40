import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, HealthServer } from '@raven/controller-kit';
import { exportCertificateExpiry } from '@raven/node-certs';
import { conventionReport, offlineKubeClient } from '@raven/testbed';
import { InformerClusterView } from '../src/cluster.ts';
import { proxyMetrics } from '../src/metrics.ts';

const scratch = mkdtempSync(join(tmpdir(), 'raven-metrics-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('proxy-server metrics follow the Prometheus conventions', () => {
  it('counters end in _total and nothing else does, for every metric proxy-server registers', async () => {
    // What main.ts wires, never started: no API call is made.
    const log = createLogger('t', { level: 'silent' });
    const kube = await offlineKubeClient(scratch);
    const health = new HealthServer('raven_proxy_server');
    const registry = health.registry;
    kube.instrument(registry, 'raven_proxy_server');
    new InformerClusterView(kube, log, registry);
    exportCertificateExpiry(registry, [undefined, undefined]);
    proxyMetrics(registry, () => ({ toTargets: 1, fromTargets: 2 }));

    const metrics = await registry.getMetricsAsJSON();
    expect(metrics.filter((m) => m.name.startsWith('raven_proxy_server_')).length).toBeGreaterThan(5);
    expect(conventionReport(metrics, ['apps/proxy-server/src', 'libs/node-certs/src'])).toEqual({ violations: [], notConstructed: [] });
  });
});
