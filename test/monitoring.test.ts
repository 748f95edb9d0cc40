import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { MONITORING_DIR, PROMETHEUS_RULE_PATH, prometheusRuleYaml } from '../scripts/monitoring.ts';
import { readManifests } from './deploy/manifests.ts';

const component = (file: string) => join(import.meta.dirname, '..', MONITORING_DIR, file);
const names = (file: string, kind: string) => readManifests(component(file)).filter((o) => o.kind === kind).map((o) => o.metadata.name).sort();

describe('the monitoring component', () => {
  it('ships the PrometheusRule generated from the rule file (npm run gen)', () => {
    expect(readFileSync(join(import.meta.dirname, '..', PROMETHEUS_RULE_PATH), 'utf8')).toBe(prometheusRuleYaml());
  });

  it('service-monitors: a ServiceMonitor and a metrics Service per PodMonitor, and deletes each PodMonitor', () => {
    const podMonitors = names('podmonitors.yaml', 'PodMonitor');
    expect(podMonitors).toHaveLength(4);
    expect(names('service-monitors/servicemonitors.yaml', 'ServiceMonitor')).toEqual(podMonitors);
    expect(names('service-monitors/metrics-services.yaml', 'Service')).toEqual(podMonitors.map((n) => `${n}-metrics`));
    const kustomization = parse(readFileSync(component('service-monitors/kustomization.yaml'), 'utf8')) as { patches: Array<{ patch: string }> };
    const deleted = kustomization.patches.map((p) => parse(p.patch) as { $patch?: string; kind: string; metadata: { name: string } })
      .filter((p) => p.$patch === 'delete' && p.kind === 'PodMonitor').map((p) => p.metadata.name).sort();
    expect(deleted).toEqual(podMonitors);
  });
});
