// Which metrics the shipped alerts and dashboard use (k8s/components/monitoring), and whether an app really exports
// them: a renamed metric would otherwise leave an alert that can never fire.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { z } from 'zod';
import { WORKSPACE_ROOT } from './apps.ts';
import type { AppName } from './apps.ts';

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'le', 'inf', 'nan',
]);

/**
 * Metric names a PromQL expression selects: identifiers that are not functions (followed by `(`), keywords,
 * label names (inside `{}` or the parentheses of by/on/without), durations or string contents.
 */
export function metricNamesIn(expr: string): string[] {
  const names = new Set<string>();
  const text = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""').replace(/\[[^\]]*\]/g, '');
  let depth = 0;
  const labelLists: number[] = [];
  const tokens = text.match(/[A-Za-z_:][\w:]*|\d+(?:\.\d+)?|[{}()]|\S/g) ?? [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t === '{') depth++;
    else if (t === '}') depth--;
    else if (t === '(') {
      if (PROMQL_GROUPING.has(tokens[i - 1] ?? '')) labelLists.push(1);
      else if (labelLists.length > 0) labelLists[labelLists.length - 1]!++;
    } else if (t === ')') {
      if (labelLists.length > 0 && --labelLists[labelLists.length - 1]! === 0) labelLists.pop();
    } else if (/^[A-Za-z_:]/.test(t) && depth === 0 && labelLists.length === 0 && !FOLLOWERS_OF_OPERATORS.has(tokens[i + 1] ?? '') && !PROMQL_WORDS.has(t.toLowerCase())) {
      names.add(t);
    }
  }
  return [...names];
}
const PROMQL_GROUPING = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** A function call `f(` or an aggregation `sum by (...)`: the identifier before these is an operator, not a metric. */
const FOLLOWERS_OF_OPERATORS = new Set(['(', 'by', 'without']);

const rulesSchema = z.object({ groups: z.array(z.object({ rules: z.array(z.looseObject({ expr: z.string() })) })) });
const dashboardSchema = z.object({ panels: z.array(z.looseObject({ title: z.string(), targets: z.array(z.object({ expr: z.string() })).optional() })) });

/** Every metric the alerting rules and the dashboard select, with where each is used. */
export function monitoredMetrics(): Map<string, string[]> {
  const dir = join(WORKSPACE_ROOT, 'k8s/components/monitoring/files');
  const used = new Map<string, string[]>();
  const note = (expr: string, where: string) => {
    for (const name of metricNamesIn(expr)) used.set(name, [...(used.get(name) ?? []), where]);
  };
  const rules = rulesSchema.parse(parse(readFileSync(join(dir, 'raven-rules.yaml'), 'utf8')));
  for (const rule of rules.groups.flatMap((g) => g.rules)) note(rule.expr, `alert ${String(rule.alert)}`);
  const dashboard = dashboardSchema.parse(JSON.parse(readFileSync(join(dir, 'raven-dashboard.json'), 'utf8')));
  for (const panel of dashboard.panels) for (const target of panel.targets ?? []) note(target.expr, `panel "${panel.title}"`);
  return used;
}

/** The app whose /metrics must carry a metric, from its name; `undefined` for names every app exports. */
export function exportingApps(metric: string): AppName[] {
  if (metric.startsWith('raven_tunnel_')) return ['tunnel-agent'];
  if (metric.startsWith('raven_pickup_') || metric.startsWith('raven_gateway_') || metric.startsWith('workqueue_')) return ['gateway-pickup'];
  if (metric.startsWith('raven_proxy_server_')) return ['proxy-server'];
  if (metric.startsWith('raven_proxy_client_')) return ['proxy-client'];
  if (metric.startsWith('raven_certificate_')) return ['proxy-server', 'proxy-client'];
  if (metric.startsWith('process_')) return ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'];
  throw new Error(`no app is known to export ${metric}`);
}

/** Names in a Prometheus text exposition, histogram and summary series included (`x_bucket`, `x_sum`, `x_count`). */
export function exportedMetricNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const m of exposition.matchAll(/^# TYPE ([A-Za-z_:][\w:]*) (\w+)$/gm)) {
    names.add(m[1]!);
    if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(m[1]! + suffix);
    if (m[2] === 'summary') for (const suffix of ['_sum', '_count']) names.add(m[1]! + suffix);
  }
  return names;
}

/** What the rules and dashboard expect from `app` that its exposition lacks, as "name (used by ...)" lines. */
export function missingMonitoredMetrics(app: AppName, exposition: string): string[] {
  const exported = exportedMetricNames(exposition);
  return [...monitoredMetrics()].filter(([name]) => exportingApps(name).includes(app) && !exported.has(name)).map(([name, where]) => `${name} (used by ${where.join(', ')})`);
}
