import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROMETHEUS_RULE_PATH, prometheusRuleYaml } from '../scripts/monitoring.ts';

describe('the monitoring component', () => {
  it('ships the PrometheusRule generated from the rule file (npm run gen)', () => {
    expect(readFileSync(join(import.meta.dirname, '..', PROMETHEUS_RULE_PATH), 'utf8')).toBe(prometheusRuleYaml());
  });
});
