import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { binaryPath, kubectl, monitoringCrdFiles, WORKSPACE_ROOT } from '@raven/testbed';
import {
  CommandFailedError, objectKey, parseManifests, renderChart, renderOverlay, run, workloads, type K8sObject,
} from './support.ts';

/**
 * The observability pack (k8s/components/monitoring, and the chart's monitoring.* values): the alerting rules pass
 * promtool's own checks and unit tests against recorded series, the chart renders exactly what the component
 * renders (with PodMonitors, or with ServiceMonitors and their metrics Services), and the real apiserver accepts
 * every object once prometheus-operator's CRDs are installed.
 */
const cluster = inject('cluster');
const dir = join(WORKSPACE_ROOT, 'k8s/components/monitoring');
const MONITORING_KINDS = new Set(['PodMonitor', 'ServiceMonitor', 'PrometheusRule']);
const METRICS_LABEL = 'raven.openyurt.io/metrics';
const isMonitoring = (o: K8sObject) => MONITORING_KINDS.has(o.kind)
  || (o.kind === 'ConfigMap' && o.metadata.name === 'raven-grafana-dashboard')
  || (o.kind === 'Service' && o.metadata.labels?.[METRICS_LABEL] === 'true');
const byKey = (objects: K8sObject[]) => new Map(objects.filter(isMonitoring).map((o) => [objectKey(o), o]));

/** `kubectl kustomize` of the wireguard overlay plus the given components (kustomize refuses absolute paths). */
async function renderWithComponents(components: string[]): Promise<K8sObject[]> {
  const scratch = mkdtempSync(join(tmpdir(), 'raven-kustomize-'));
  try {
    const path = (p: string) => relative(scratch, join(WORKSPACE_ROOT, p));
    writeFileSync(join(scratch, 'kustomization.yaml'), JSON.stringify({
      apiVersion: 'kustomize.config.k8s.io/v1beta1', kind: 'Kustomization',
      resources: [path('k8s/overlays/wireguard')], components: components.map(path),
    }));
    return parseManifests(await run(binaryPath('kubectl'), ['kustomize', scratch]));
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

interface Selecting { spec: { selector: { matchLabels: Record<string, string> } } }
const selects = (selector: Record<string, string>, labels: Record<string, string> = {}) => Object.entries(selector).every(([k, v]) => labels[k] === v);
const healthPorts = (objects: K8sObject[], selector: Record<string, string>) => {
  const matching = workloads(objects).filter((w) => selects(selector, w.spec.template.metadata.labels));
  return { count: matching.length, ports: matching.flatMap((w) => w.spec.template.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name)) };
};

describe('alerting rules', () => {
  it('pass promtool check rules', async () => {
    const out = await run(binaryPath('promtool'), ['check', 'rules', join(dir, 'files/raven-rules.yaml')]);
    expect(out).toMatch(/SUCCESS: 10 rules found/);
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
  let withServiceMonitors: K8sObject[];
  beforeAll(async () => {
    [overlay, withServiceMonitors] = await Promise.all([
      renderOverlay('monitoring'),
      renderWithComponents(['k8s/components/monitoring', 'k8s/components/monitoring/service-monitors']),
    ]);
    await kubectl(cluster.kubeconfig, ['apply', '--server-side', ...monitoringCrdFiles().flatMap((f) => ['-f', f])]);
    await kubectl(cluster.kubeconfig, ['wait', '--for=condition=Established', '--timeout=60s',
      'crd/podmonitors.monitoring.coreos.com', 'crd/servicemonitors.monitoring.coreos.com', 'crd/prometheusrules.monitoring.coreos.com']);
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

  it('with the service-monitors component: four ServiceMonitors and their metrics Services instead of the PodMonitors', () => {
    expect([...byKey(withServiceMonitors).keys()].sort()).toEqual([
      'ConfigMap/kube-system/raven-grafana-dashboard',
      'PrometheusRule/kube-system/raven',
      'Service/kube-system/raven-gateway-pickup-metrics', 'Service/kube-system/raven-proxy-client-metrics',
      'Service/kube-system/raven-proxy-server-metrics', 'Service/kube-system/raven-tunnel-agent-metrics',
      'ServiceMonitor/kube-system/raven-gateway-pickup', 'ServiceMonitor/kube-system/raven-proxy-client',
      'ServiceMonitor/kube-system/raven-proxy-server', 'ServiceMonitor/kube-system/raven-tunnel-agent',
    ]);
  });

  it.each([
    ['PodMonitors', { 'monitoring.podMonitors': 'true' }, () => overlay],
    ['ServiceMonitors', { 'monitoring.serviceMonitors': 'true' }, () => withServiceMonitors],
  ] as const)('the chart renders the same objects with the monitoring values on (%s)', async (_, scrape, kustomize) => {
    const chart = await renderChart({ ...scrape, 'monitoring.prometheusRule': 'true', 'monitoring.dashboard': 'true' });
    const [fromChart, fromKustomize] = [byKey(chart), byKey(kustomize())];
    expect([...fromChart.keys()].sort()).toEqual([...fromKustomize.keys()].sort());
    for (const [key, object] of fromKustomize) expect(fromChart.get(key), key).toEqual(object);
  });

  it('the chart renders no monitoring object by default', async () => {
    expect((await renderChart()).filter(isMonitoring)).toEqual([]);
  });

  it('the chart refuses PodMonitors and ServiceMonitors together (every target scraped twice)', async () => {
    const err = await renderChart({ 'monitoring.podMonitors': 'true', 'monitoring.serviceMonitors': 'true' }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).stderr).toMatch(/podMonitors and serviceMonitors each scrape every app; turn on one of them/);
  });

  it('the real apiserver accepts every monitoring object', async () => {
    const items = [...new Map([...byKey(overlay), ...byKey(withServiceMonitors)]).values()];
    const out = await kubectl(cluster.kubeconfig, ['apply', '--server-side', '--dry-run=server', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
    expect(out.split('\n').filter((l) => l.endsWith('serverside-applied (server dry run)'))).toHaveLength(items.length);
  });

  it('every PodMonitor targets a port that its workload names', () => {
    for (const monitor of overlay.filter((o) => o.kind === 'PodMonitor')) {
      const spec = (monitor as unknown as Selecting & { spec: { podMetricsEndpoints: Array<{ port: string }> } }).spec;
      const { count, ports } = healthPorts(overlay, spec.selector.matchLabels);
      expect(count, monitor.metadata.name).toBe(1);
      for (const endpoint of spec.podMetricsEndpoints) expect(ports, monitor.metadata.name).toContain(endpoint.port);
    }
  });

  it('every ServiceMonitor selects one metrics Service whose port leads to a port that its workload names', () => {
    type Service = K8sObject & { spec: { selector: Record<string, string>; clusterIP?: string; ports: Array<{ name: string; targetPort: string }> } };
    const monitors = withServiceMonitors.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors).toHaveLength(4);
    for (const monitor of monitors) {
      const spec = (monitor as unknown as Selecting & { spec: { endpoints: Array<{ port: string }> } }).spec;
      const services = withServiceMonitors.filter((o): o is Service => o.kind === 'Service' && selects(spec.selector.matchLabels, o.metadata.labels));
      expect(services.map((s) => s.metadata.name), monitor.metadata.name).toEqual([`${monitor.metadata.name}-metrics`]);
      const service = services[0]!;
      expect(service.spec.clusterIP).toBe('None');
      // The job label (jobLabel: app.kubernetes.io/name) is the one the PodMonitors give: the rules and the dashboard match on it.
      expect(service.metadata.labels?.['app.kubernetes.io/name']).toBe(monitor.metadata.name);
      const { count, ports } = healthPorts(withServiceMonitors, service.spec.selector);
      expect(count, service.metadata.name).toBe(1);
      for (const endpoint of spec.endpoints) {
        const port = service.spec.ports.find((p) => p.name === endpoint.port);
        expect(port, `${monitor.metadata.name}: ${endpoint.port}`).toBeDefined();
        expect(ports, service.metadata.name).toContain(port!.targetPort);
      }
    }
  });
});
