import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, toNodeView } from '@raven/api-types';
import { createLogger, HealthServer, Informer, RESOURCES } from '@raven/controller-kit';
import { exportCertificateExpiry } from '@raven/node-certs';
import { conventionReport, offlineKubeClient } from '@raven/testbed';
import { exportConnectionMetrics, servingMetrics } from '../src/metrics.ts';

const scratch = mkdtempSync(join(tmpdir(), 'raven-metrics-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('proxy-client metrics follow the Prometheus conventions', () => {
  it('counters end in _total and nothing else does, for every metric proxy-client registers', async () => {
    // What main.ts wires, never started: no API call is made.
    const log = createLogger('t', { level: 'silent' });
    const kube = await offlineKubeClient(scratch);
    const health = new HealthServer('raven_proxy_client');
    const registry = health.registry;
    kube.instrument(registry, 'raven_proxy_client');
    const common = { kube, log, registry, metricPrefix: 'raven_proxy_client' };
    new Informer({ ...common, type: RESOURCES.gateways, transform: (raw) => gatewayV1beta1Schema.parse(raw) });
    new Informer({ ...common, type: RESOURCES.nodes, transform: toNodeView });
    exportCertificateExpiry(registry, [undefined]);
    servingMetrics(registry);
    exportConnectionMetrics(registry, { connectedServers: () => 1, stats: () => ({ streams: 2, bytesToServers: 3, bytesFromServers: 4 }) });

    const metrics = await registry.getMetricsAsJSON();
    expect(metrics.filter((m) => m.name.startsWith('raven_proxy_client_')).length).toBeGreaterThan(5);
    expect(conventionReport(metrics, ['apps/proxy-client/src', 'libs/node-certs/src'])).toEqual({ violations: [], notConstructed: [] });
  });
});
