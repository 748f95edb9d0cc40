import { describe, expect, it } from 'vitest';
import { conventionReport, metricsInSource, namingViolations } from '../src/metric-conventions.ts';

describe('namingViolations', () => {
  it.each([
    { metric: { name: 'x_requests_total', type: 'counter' }, expected: [] },
    { metric: { name: 'x_active', type: 'gauge' }, expected: [] },
    { metric: { name: 'x_duration_seconds', type: 'histogram' }, expected: [] },
    { metric: { name: 'x_requests', type: 'counter' }, expected: ['x_requests is a counter not ending in _total'] },
    { metric: { name: 'x_peers_total', type: 'gauge' }, expected: ['x_peers_total ends in _total but is a gauge, not a counter'] },
    { metric: { name: 'x_latency_total', type: 'histogram' }, expected: ['x_latency_total ends in _total but is a histogram, not a counter'] },
    { metric: { name: 'nodejs_active_handles_total', type: 'gauge' }, expected: [] },
    { metric: { name: 'nodejs_active_handles_total', type: 'counter' }, expected: [] },
    { metric: { name: 'nodejs_eventloop_lag_total', type: 'gauge' }, expected: ['nodejs_eventloop_lag_total ends in _total but is a gauge, not a counter'] },
  ])('$metric.type $metric.name', ({ metric, expected }) => {
    expect(namingViolations([metric])).toEqual(expected);
  });
});

describe('metricsInSource', () => {
  const found = metricsInSource(['apps/proxy-client/src']);

  it.each([
    ['a literal name', 'gauge', 'raven_proxy_client_active'],
    ['a prefixed template', 'counter', 'raven_proxy_client_dials_total'],
    ['a multi-line constructor', 'counter', 'raven_proxy_client_bytes_total'],
  ] as const)('finds %s', (_, type, name) => {
    expect(found.some((s) => s.type === type && s.pattern.test(name))).toBe(true);
  });

  it('finds a template whose prefix has a default', () => {
    const kit = metricsInSource(['libs/controller-kit/src']);
    expect(kit.some((s) => s.type === 'gauge' && s.pattern.test('raven_pickup_leader_is_leader'))).toBe(true);
    expect(kit.some((s) => s.type === 'counter' && s.pattern.test('raven_tunnel_informer_restarts_total'))).toBe(true);
  });

  it('finds names passed to a helper first', () => {
    const gateway = metricsInSource(['apps/gateway-pickup/src/controllers']);
    expect(gateway.some((s) => s.type === 'gauge' && s.pattern.test('raven_gateway_ready'))).toBe(true);
  });

  it('reports what a registry lacks', () => {
    const report = conventionReport([{ name: 'raven_proxy_client_active', type: 'gauge' }], ['apps/proxy-client/src']);
    expect(report.violations).toEqual([]);
    expect(report.notConstructed).toEqual(expect.arrayContaining([expect.stringMatching(/^apps\/proxy-client\/src\/metrics\.ts: counter .*dials_total/)]));
    expect(report.notConstructed.some((s) => s.endsWith(']+_active$'))).toBe(false);
  });
});
