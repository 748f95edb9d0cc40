import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, EventRecorder, HealthServer, LeaderElector } from '@raven/controller-kit';
import { createCA, issueCertificate } from '@raven/pki';
import { conventionReport, offlineKubeClient } from '@raven/testbed';
import { cacheInformers } from '../src/caches.ts';
import { csrApproverController } from '../src/controllers/csr-approver.ts';
import { dnsController } from '../src/controllers/dns.ts';
import { gatewayStatusController } from '../src/controllers/gateway-status.ts';
import { internalServiceController } from '../src/controllers/internal-service.ts';
import { publicServiceController } from '../src/controllers/public-service.ts';
import { HeartbeatTracker } from '../src/heartbeats.ts';
import { WebhookServer } from '../src/webhook/server.ts';

const scratch = mkdtempSync(join(tmpdir(), 'raven-metrics-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('gateway-pickup metrics follow the Prometheus conventions', () => {
  it('counters end in _total and nothing else does, for every metric gateway-pickup and controller-kit register', async () => {
    // What main.ts wires (every controller, the webhook, leader election), never started: no API call is made.
    const log = createLogger('t', { level: 'silent' });
    const kube = await offlineKubeClient(scratch);
    const health = new HealthServer('raven_pickup');
    const registry = health.registry;
    kube.instrument(registry, 'raven_pickup');
    const ca = await createCA('metrics-test');
    const leaf = await issueCertificate(ca, { commonName: 'webhook', dnsNames: ['webhook'], usages: ['server'], validityDays: 1 });
    new WebhookServer({ caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem }, log, registry);
    const caches = cacheInformers(kube, log, registry, 'kube-system', { calico: true });
    const common = { kube, caches, log, registry, namespace: 'kube-system', resyncMs: 60_000 };
    gatewayStatusController({
      ...common, heartbeats: new HeartbeatTracker(() => caches.heartbeats.sessionStartedAt), events: new EventRecorder(kube, log, 'test', 'test'),
      workers: 1, publicIPFromExternalIP: false,
    });
    dnsController(common);
    internalServiceController(common);
    publicServiceController(common);
    csrApproverController(common);
    new LeaderElector({ kube, log, namespace: 'kube-system', name: 'raven-gateway-pickup', registry, metricPrefix: 'raven_pickup' });

    const metrics = await registry.getMetricsAsJSON();
    expect(metrics.filter((m) => m.name.startsWith('raven_pickup_') || m.name.startsWith('raven_gateway_')).length).toBeGreaterThan(10);
    expect(conventionReport(metrics, ['apps/gateway-pickup/src', 'libs/controller-kit/src'])).toEqual({ violations: [], notConstructed: [] });
  });
});
