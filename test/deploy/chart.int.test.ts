import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { binaryPath, WORKSPACE_ROOT } from '@raven/testbed';
import { APPS, CommandFailedError, OVERLAYS, objectKey, renderChart, renderOverlay, run, type K8sObject, type Overlay } from './support.ts';

/**
 * Acceptance 4: charts/raven renders, with the pinned helm, exactly what kustomize renders: the default values
 * against the wireguard overlay, and each other overlay against the values that mean the same. Helm's own
 * bookkeeping labels are the only thing ignored; every other field, list order included, must be equal.
 */
const HELM_LABELS = ['helm.sh/chart', 'app.kubernetes.io/managed-by', 'app.kubernetes.io/instance'];

const devImages = Object.fromEntries(APPS.flatMap((app) => {
  const key = app.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
  return [[`${key}.image.repository`, `raven-ts/${app}`], [`${key}.image.tag`, 'dev'], [`${key}.image.pullPolicy`, 'Never']];
}));

const VALUES: Record<Overlay, Record<string, string>> = {
  wireguard: {},
  libreswan: { vpnDriver: 'libreswan' },
  'l3-only': { 'modes.l7': 'false' },
  'l7-only': { 'modes.l3': 'false', 'proxyServer.replicas': '2' },
  dev: { logLevel: 'debug', ...devImages },
  box: { k8sServiceHost: '127.0.0.1', k8sServicePort: '6443' },
};

function normalise(objects: readonly K8sObject[]): Map<string, K8sObject> {
  const out = new Map<string, K8sObject>();
  for (const o of objects) {
    const copy = structuredClone(o);
    for (const label of HELM_LABELS) delete copy.metadata.labels?.[label];
    const key = objectKey(copy);
    if (out.has(key)) throw new Error(`rendered twice: ${key}`);
    out.set(key, copy);
  }
  return out;
}

/** Paths at which two JSON values differ (`a.b.0.c`), so a failure names the field. */
function diffPaths(a: unknown, b: unknown, path = ''): string[] {
  if (Object.is(a, b)) return [];
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return [path || '.'];
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(ra), ...Object.keys(rb)])].sort();
  return keys.flatMap((k) => diffPaths(ra[k], rb[k], path ? `${path}.${k}` : k));
}

function compare(kustomize: readonly K8sObject[], helm: readonly K8sObject[]): string[] {
  const k = normalise(kustomize);
  const h = normalise(helm);
  const keys = [...new Set([...k.keys(), ...h.keys()])].sort();
  return keys.flatMap((key) => {
    if (!k.has(key)) return [`${key}: only in the chart`];
    if (!h.has(key)) return [`${key}: only in kustomize`];
    return diffPaths(k.get(key), h.get(key)).map((p) => `${key}: ${p}`);
  });
}

const overlays = new Map<Overlay, K8sObject[]>();
beforeAll(async () => {
  await Promise.all(OVERLAYS.map(async (o) => overlays.set(o, await renderOverlay(o))));
});

describe('charts/raven renders what kustomize renders', () => {
  it.each(OVERLAYS)('%s', async (overlay) => {
    const chart = await renderChart(VALUES[overlay]);
    expect(compare(overlays.get(overlay)!, chart)).toEqual([]);
    expect(chart.length).toBe(overlays.get(overlay)!.length);
  });

  it('the comparison is sharp: one changed value is one reported difference', async () => {
    const chart = await renderChart({ 'gatewayPickup.resources.limits.memory': '1Gi' });
    expect(compare(overlays.get('wireguard')!, chart)).toEqual([
      'Deployment/kube-system/raven-gateway-pickup: spec.template.spec.containers.0.resources.limits.memory',
    ]);
  });

  it("only Helm's bookkeeping labels were ignored, and the templated objects carry them", async () => {
    const chart = await renderChart();
    const templated = chart.filter((o) => o.metadata.labels?.['app.kubernetes.io/part-of'] === 'raven' && o.metadata.labels['app.kubernetes.io/component']);
    expect(templated.length).toBeGreaterThan(15);
    for (const o of templated) expect(o.metadata.labels, objectKey(o)).toMatchObject({ 'app.kubernetes.io/managed-by': 'Helm', 'helm.sh/chart': 'raven-0.1.0' });
  });
});

describe('chart values are checked', () => {
  it('helm lint passes', async () => {
    const out = await run(binaryPath('helm'), ['lint', join(WORKSPACE_ROOT, 'charts/raven')]);
    expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it.each([
    [{ vpnDriver: 'ipsec' }, /vpnDriver must be wireguard or libreswan, got "ipsec"/],
    [{ 'modes.l3': 'false', 'modes.l7': 'false' }, /at least one of l3 and l7 must be on/],
    [{ logLevel: 'loud' }, /logLevel must be empty or one of/],
    [{ k8sServiceHost: '127.0.0.1\nevil: true', k8sServicePort: '6443' }, /k8sServiceHost must be an IPv4 address or a DNS name/],
    [{ 'proxyDns.clusterIP': '10.96.0.53; rm' }, /proxyDns.clusterIP must be an IPv4 address/],
    [{ k8sServiceHost: '127.0.0.1' }, /k8sServicePort must be a port number when k8sServiceHost is set, got ""/],
  ] as const)('%o is refused', async (values, message) => {
    const err = await renderChart(values).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailedError);
    expect((err as CommandFailedError).stderr).toMatch(message);
  });
});
