import { describe, expect, it } from 'vitest';
import { exportedMetricNames, exportingApps, metricNamesIn, monitoredMetrics } from '../src/monitoring.ts';

describe('metricNamesIn', () => {
  it.each([
    ['raven_tunnel_peer_reachable == 0', ['raven_tunnel_peer_reachable']],
    ['sum(raven_pickup_leader_is_leader) < 1 or absent(raven_pickup_leader_is_leader)', ['raven_pickup_leader_is_leader']],
    ['max by (gateway) (raven_gateway_ready) == 0', ['raven_gateway_ready']],
    ['max by (gateway) (a{type="proxy"}) == 0 and on (gateway) max by (gateway) (b{type="proxy"}) > 0', ['a', 'b']],
    ['increase(x_total{verdict="deny", reason=~"a|b"}[15m]) > 0', ['x_total']],
    ['histogram_quantile(0.99, sum by (le, instance) (rate(h_bucket[5m])))', ['h_bucket']],
    ['c_seconds - time() < 3 * 86400', ['c_seconds']],
    ['rate(rx_total[5m]) * 8', ['rx_total']],
    ['process_resident_memory_bytes{job=~"raven.*"}', ['process_resident_memory_bytes']],
  ])('%s', (expr, expected) => {
    expect(metricNamesIn(expr).sort()).toEqual([...expected].sort());
  });
});

describe('exportedMetricNames', () => {
  it('reads TYPE lines, with the series of histograms', () => {
    const text = '# HELP a_total x\n# TYPE a_total counter\na_total 1\n# TYPE h_seconds histogram\nh_seconds_bucket{le="1"} 0\n# TYPE g gauge\n';
    expect([...exportedMetricNames(text)].sort()).toEqual(['a_total', 'g', 'h_seconds', 'h_seconds_bucket', 'h_seconds_count', 'h_seconds_sum']);
  });
});

describe('the shipped rules and dashboard', () => {
  it('name only metrics some app is responsible for', () => {
    const used = monitoredMetrics();
    expect(used.size).toBeGreaterThan(15);
    for (const name of used.keys()) expect(exportingApps(name).length, name).toBeGreaterThan(0);
  });
});
