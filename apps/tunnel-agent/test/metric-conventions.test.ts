import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger, HealthServer } from '@raven/controller-kit';
import type { Exec } from '@raven/netlink';
import { conventionReport, offlineKubeClient } from '@raven/testbed';
import { TunnelAgent } from '../src/agent.ts';
import { PresharedKey } from '../src/psk.ts';
import { WireguardDriver } from '../src/vpn/wireguard.ts';

const scratch = mkdtempSync(join(tmpdir(), 'raven-metrics-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('tunnel-agent metrics follow the Prometheus conventions', () => {
  it('counters end in _total and nothing else does, for every metric the agent registers', async () => {
    // What main.ts wires, never started: no command runs and no API call is made.
    const exec: Exec = { run: () => Promise.reject(new Error('no command runs in this test')) };
    const log = createLogger('t', { level: 'silent' });
    const kube = await offlineKubeClient(scratch);
    const health = new HealthServer('raven_tunnel');
    kube.instrument(health.registry, 'raven_tunnel');
    new TunnelAgent({
      kube, log, registry: health.registry, exec, psk: new PresharedKey({ kind: 'secret', kube, namespace: 'kube-system' }, log),
      driver: new WireguardDriver({ exec, log, stateDir: join(scratch, 'state'), device: 'raven-wg0', implementation: 'kernel' }),
      nodeName: 'n1', namespace: 'kube-system', forwardNodeIP: false, keepaliveSeconds: 5, resyncMs: 30_000, probeIntervalMs: 5_000,
      heartbeat: { intervalMs: 500 },
    });
    const metrics = await health.registry.getMetricsAsJSON();
    expect(metrics.filter((m) => m.name.startsWith('raven_tunnel_')).length).toBeGreaterThan(10);
    expect(conventionReport(metrics, ['apps/tunnel-agent/src'])).toEqual({ violations: [], notConstructed: [] });
  });
});
