// Prometheus naming conventions, checked on a registry the apps' own constructors filled: counters end in `_total`,
// nothing else does. The source scan finds every metric a file registers, so that an app's test notices a new
// metric it does not construct.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { KubeClient } from '@raven/controller-kit';
import { WORKSPACE_ROOT } from './apps.ts';
import { writeKubeconfig } from './kubeconfig.ts';

/**
 * What `registry.getMetricsAsJSON()` reports of each metric. prom-client types `type` as a numeric enum, but its
 * values are the exposition's type names ('counter', 'gauge', ...).
 */
export interface MetricInfo { name: string; type: unknown }

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary';

/**
 * prom-client's default Node.js metrics (collectDefaultMetrics) name these gauges so upstream; renaming them would
 * break every dashboard built on prom-client, so they are the one exception.
 */
export const PROM_CLIENT_GAUGES_ENDING_IN_TOTAL: ReadonlySet<string> = new Set([
  'nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total',
]);

/** One sentence per metric that breaks the conventions. */
export function namingViolations(metrics: readonly MetricInfo[]): string[] {
  return metrics.flatMap(({ name, type }) => {
    if (type === 'gauge' && PROM_CLIENT_GAUGES_ENDING_IN_TOTAL.has(name)) return [];
    if (type === 'counter' && !name.endsWith('_total')) return [`${name} is a counter not ending in _total`];
    if (type !== 'counter' && name.endsWith('_total')) return [`${name} ends in _total but is a ${String(type)}, not a counter`];
    return [];
  });
}

export interface SourceMetric { where: string; type: MetricType; pattern: RegExp }

const CONSTRUCTOR_TYPES: Record<string, MetricType> = { Counter: 'counter', MirroredCounter: 'counter', Gauge: 'gauge', Histogram: 'histogram', Summary: 'summary' };
// `new Gauge({ name: 'x' ...` or `name: \`${prefix}_x\``; and helpers called with the name first: `conditionGauge('x', ...)`.
const CONSTRUCTOR = /new (Counter|MirroredCounter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name:\s*(?:'([^']+)'|`((?:[^`$]|\$\{[^}]*\})+)`)/g;
const HELPER = /\b\w*(Counter|Gauge|Histogram)\(\s*'([a-z_:][\w:]*)'/g;

/** A metric name as written in source, `${...}` parts (prefixes) matching any run of name characters. */
function namePattern(written: string): RegExp {
  const parts = written.split(/\$\{[^}]*\}/).map((s) => s.replace(/[.*+?^$()|[\]\\]/g, '\\$&'));
  return new RegExp(`^${parts.join('[a-z0-9_:]+')}$`);
}

/** Every metric registered by the TypeScript files under `dirs` (workspace-relative), tests excluded. */
export function metricsInSource(dirs: readonly string[]): SourceMetric[] {
  const files = dirs.flatMap((dir) => readdirSync(join(WORKSPACE_ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => join(WORKSPACE_ROOT, dir, f)));
  return files.flatMap((file) => {
    const text = readFileSync(file, 'utf8');
    const where = relative(WORKSPACE_ROOT, file);
    return [
      ...[...text.matchAll(CONSTRUCTOR)].map((m) => ({ where, type: CONSTRUCTOR_TYPES[m[1]!]!, pattern: namePattern(m[2] ?? m[3]!) })),
      ...[...text.matchAll(HELPER)].map((m) => ({ where, type: CONSTRUCTOR_TYPES[m[1]!]!, pattern: namePattern(m[2]!) })),
    ];
  });
}

/** The conventions broken, and the metrics the source registers that `metrics` lacks (or has with another type). */
export function conventionReport(metrics: readonly MetricInfo[], dirs: readonly string[]): { violations: string[]; notConstructed: string[] } {
  const notConstructed = metricsInSource(dirs)
    .filter((s) => !metrics.some((m) => m.type === s.type && s.pattern.test(m.name)))
    .map((s) => `${s.where}: ${s.type} ${s.pattern.source}`);
  return { violations: namingViolations(metrics), notConstructed };
}

/** A KubeClient for constructors that only keep it (nothing listens at its server). */
export function offlineKubeClient(scratchDir: string): Promise<KubeClient> {
  const path = writeKubeconfig(join(scratchDir, 'kubeconfig'), 'https://127.0.0.1:1', '', { token: 'offline' });
  return KubeClient.load({ kubeconfig: path, userAgent: 'raven-metric-conventions' });
}
