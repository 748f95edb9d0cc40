import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { exportGatewayMetrics } from '../src/controllers/gateway-status.ts';

type Condition = { type: string; status: 'True' | 'False' | 'Unknown' };
const gateway = (name: string, conditions?: Condition[]): Gateway => gatewayV1beta1Schema.parse({
  apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name, uid: `uid-${name}` }, spec: {},
  ...(conditions ? { status: { conditions: conditions.map((c) => ({ ...c, reason: 'R', message: '', lastTransitionTime: '2026-01-01T00:00:00Z' })) } } : {}),
});

/** A registry with the Gateway metrics over a mutable list of Gateways, as the cache would hold them. */
function exported(gateways: Gateway[]) {
  const registry = new Registry();
  exportGatewayMetrics(registry, { gateways: { list: () => gateways }, ravenConfig: { list: () => [] } });
  return async (metric: string): Promise<Record<string, number>> => {
    const found = (await registry.getMetricsAsJSON()).find((m) => m.name === metric);
    return Object.fromEntries((found?.values ?? []).map((v) => [String(v.labels.gateway), v.value]));
  };
}

describe('raven_gateway_ready', () => {
  it.each<[string, Condition[] | undefined, number]>([
    ['Ready True: 1', [{ type: 'Ready', status: 'True' }], 1],
    ['Ready False: 0', [{ type: 'Ready', status: 'False' }], 0],
    ['Ready Unknown: 0', [{ type: 'Ready', status: 'Unknown' }], 0],
    ['no status yet: 0', undefined, 0],
    ['no Ready condition, only Degraded True: 0', [{ type: 'Degraded', status: 'True' }], 0],
    ['Ready True and Degraded True: 1', [{ type: 'Ready', status: 'True' }, { type: 'Degraded', status: 'True' }], 1],
  ])('%s', async (_, conditions, expected) => {
    expect(await exported([gateway('gw', conditions)])('raven_gateway_ready')).toEqual({ gw: expected });
  });

  it('has one series per Gateway, and a deleted Gateway\'s series is gone at the next scrape', async () => {
    const gateways = [gateway('ready', [{ type: 'Ready', status: 'True' }]), gateway('pending', [{ type: 'Ready', status: 'False' }])];
    const scrape = exported(gateways);
    expect(await scrape('raven_gateway_ready')).toEqual({ ready: 1, pending: 0 });
    gateways.splice(0, 1);
    expect(await scrape('raven_gateway_ready')).toEqual({ pending: 0 });
    gateways.splice(0, 1);
    expect(await scrape('raven_gateway_ready')).toEqual({});
  });

  it('follows a Gateway whose Ready condition changes', async () => {
    const gateways = [gateway('gw', [{ type: 'Ready', status: 'False' }])];
    const scrape = exported(gateways);
    expect(await scrape('raven_gateway_ready')).toEqual({ gw: 0 });
    gateways[0] = gateway('gw', [{ type: 'Ready', status: 'True' }]);
    expect(await scrape('raven_gateway_ready')).toEqual({ gw: 1 });
  });
});

describe('raven_gateway_degraded', () => {
  it.each<[string, Condition[] | undefined, number]>([
    ['Degraded True: 1', [{ type: 'Degraded', status: 'True' }], 1],
    ['Degraded False: 0', [{ type: 'Degraded', status: 'False' }], 0],
    ['only Ready True: 0', [{ type: 'Ready', status: 'True' }], 0],
  ])('%s', async (_, conditions, expected) => {
    expect(await exported([gateway('gw', conditions)])('raven_gateway_degraded')).toEqual({ gw: expected });
  });
});
