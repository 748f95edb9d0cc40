import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { binaryPath, kubectl, monitoringCrdFiles, WORKSPACE_ROOT } from '@raven/testbed';
import { CommandFailedError, objectKey, renderChart, renderOverlay, run, type K8sObject } from './support.ts';

/**
 * The observability pack (k8s/components/monitoring, and the chart's monitoring.* values): the alerting rules pass
 * promtool's own checks and unit tests against recorded series, the chart renders exactly what the component
 * renders, and the real apiserver accepts every object once prometheus-operator's CRDs are installed.
 */
const cluster = inject('cluster');
const dir = join(WORKSPACE_ROOT, 'k8s/components/monitoring');
const MONITORING_KINDS = new Set(['PodMonitor', 'PrometheusRule']);
const isMonitoring = (o: K8sObject) => MONITORING_KINDS.has(o.kind) || (o.kind === 'ConfigMap' && o.metadata.name === 'raven-grafana-dashboard');
const byKey = (objects: K8sObject[]) => new Map(objects.filter(isMonitoring).map((o) => [objectKey(o), o]));

describe('alerting rules', () => {
  it('pass promtool check rules', async () => {
    const out = await run(binaryPath('promtool'), ['check', 'rules', join(dir, 'files/raven-rules.yaml')]);
    expect(out).toMatch(/SUCCESS: 11 rules found/);
  });

  it('pass their promtool unit tests against recorded series', async () => {
    const out = await run(binaryPath('promtool'), ['test', 'rules', join(dir, 'tests/raven-rules.test.yaml')]);
    expect(out).toMatch(/SUCCESS/);
  });

  it('the unit tests are sharp: a changed threshold fails them', async () => {
    const scratch = mkdtempSync(join(tmpdir(), 'raven-rules-'));
    try {
      const rules = readFileSync(join(dir, 'files/raven-rules.yaml'), 'utf8');
      writeFileSync(join(scratch, 'raven-rules.yaml'), rules.replace('raven_tunnel_peer_handshake_age_seconds > 300', 'raven_tunnel_peer_handshake_age_seconds > 3000'));
      copyFileSync(join(dir, 'tests/raven-rules.test.yaml'), join(scratch, 'test.yaml'));
      writeFileSync(join(scratch, 'test.yaml'), readFileSync(join(scratch, 'test.yaml'), 'utf8').replace('../files/raven-rules.yaml', 'raven-rules.yaml'));
      const err = await run(binaryPath('promtool'), ['test', 'rules', join(scratch, 'test.yaml')]).then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(CommandFailedError);
      expect(`${(err as CommandFailedError).stderr}\n${(err as CommandFailedError).stdout}`).toMatch(/RavenHandshakeTooOld/);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });
});

describe('the monitoring component and the chart', () => {
  let overlay: K8sObject[];
  beforeAll(async () => {
    overlay = await renderOverlay('monitoring');
    await kubectl(cluster.kubeconfig, ['apply', '--server-side', ...monitoringCrdFiles().flatMap((f) => ['-f', f])]);
    await kubectl(cluster.kubeconfig, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/podmonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
  });
  afterAll(async () => {
    await kubectl(cluster.kubeconfig, ['delete', '--ignore-not-found', '--wait=false', ...monitoringCrdFiles().flatMap((f) => ['-f', f])]).catch(() => undefined);
  });

  it('renders four PodMonitors, the PrometheusRule and the dashboard ConfigMap', () => {
    expect([...byKey(overlay).keys()].sort()).toEqual([
      'ConfigMap/kube-system/raven-grafana-dashboard',
      'PodMonitor/kube-system/raven-gateway-pickup', 'PodMonitor/kube-system/raven-proxy-client',
      'PodMonitor/kube-system/raven-proxy-server', 'PodMonitor/kube-system/raven-tunnel-agent',
      'PrometheusRule/kube-system/raven',
    ]);
  });

  it('the chart renders the same objects with the monitoring values on, and none by default', async () => {
    const chart = await renderChart({ 'monitoring.podMonitors': 'true', 'monitoring.prometheusRule': 'true', 'monitoring.dashboard': 'true' });
    const [fromChart, fromKustomize] = [byKey(chart), byKey(overlay)];
    expect([...fromChart.keys()].sort()).toEqual([...fromKustomize.keys()].sort());
    for (const [key, object] of fromKustomize) expect(fromChart.get(key), key).toEqual(object);
    expect((await renderChart()).filter(isMonitoring)).toEqual([]);
  });

  it('the real apiserver accepts every monitoring object', async () => {
    const items = overlay.filter(isMonitoring);
    const out = await kubectl(cluster.kubeconfig, ['apply', '--server-side', '--dry-run=server', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    expect(out.split('\n').filter((l) => l.endsWith('serverside-applied (server dry run)'))).toHaveLength(items.length);
  });

  it('every PodMonitor targets a port that its workload names', () => {
    for (const monitor of overlay.filter((o) => o.kind === 'PodMonitor')) {
      const spec = (monitor as unknown as { spec: { selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: Array<{ port: string }> } }).spec;
      const workload = overlay.find((o) => ['Deployment', 'DaemonSet'].includes(o.kind)
        && Object.entries(spec.selector.matchLabels).every(([k, v]) => (o as unknown as { spec: { template: { metadata: { labels: Record<string, string> } } } }).spec.template.metadata.labels[k] === v));
      expect(workload, monitor.metadata.name).toBeDefined();
      const ports = (workload as unknown as { spec: { template: { spec: { containers: Array<{ ports?: Array<{ name?: string }> }> } } } }).spec.template.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
      for (const endpoint of spec.podMetricsEndpoints) expect(ports, monitor.metadata.name).toContain(endpoint.port);
    }
  });
});
