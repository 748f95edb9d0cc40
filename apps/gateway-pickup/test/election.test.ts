import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, gatewayV1beta1Schema, type NodeView } from '@raven/api-types';
import { EXTRA_CIDRS_CONDITION, mergeConditions, planGatewayStatus, screenExtraCIDRs, type ElectionInput } from '../src/election.ts';

const guard = { ips: ['172.16.2.103', '198.18.0.11'], cidrs: ['10.96.0.0/12'] };

describe('screenExtraCIDRs', () => {
  it.each<[string, string, string[], RegExp | undefined]>([
    ['two narrow ranges', '192.0.2.0/24, 198.51.100.0/24', ['192.0.2.0/24', '198.51.100.0/24'], undefined],
    ['the two halves of the Internet', '0.0.0.0/1,128.0.0.0/1', [], /"0.0.0.0\/1" is wider than \/8; "128.0.0.0\/1" is wider than \/8/],
    ['a word', 'abc,192.0.2.0/24', ['192.0.2.0/24'], /"abc" is not a CIDR/],
    ['host bits', '192.0.2.1/24', [], /has host bits set/],
    ['a node address', '172.16.0.0/16', [], /contains the node or public address 172.16.2.103/],
    ['a public address', '198.18.0.0/24', [], /contains the node or public address 198.18.0.11/],
    ['the Service range', '10.100.0.0/16', [], /overlaps the protected range 10.96.0.0\/12/],
    ['an IPv6 range', 'fd00:1::/64', ['fd00:1::/64'], undefined],
  ])('%s', (_d, annotation, accepted, refused) => {
    const result = screenExtraCIDRs(annotation, guard);
    expect(result.accepted).toEqual(accepted);
    if (refused) expect(result.refused.join('; ')).toMatch(refused);
    else expect(result.refused).toEqual([]);
  });
});

const node = (name: string, internalIPs: string[], podCIDRs: string[] = []): NodeView => ({
  metadata: { name }, gateway: 'gw', internalIPs, externalIPs: [], podCIDRs, ready: 'True', calico: false,
});

const election = (annotations: Record<string, string>, members: NodeView[]): ElectionInput => ({
  gateway: gatewayV1beta1Schema.parse({
    apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw', annotations, generation: 3 },
    spec: { proxyConfig: { Replicas: 0 }, endpoints: [{ nodeName: 'a', type: 'tunnel' }] },
  }),
  members, modes: { present: true, l3: true, l7: false }, availability: () => ({ available: true }), calicoBlocks: () => undefined,
  discoveredPublicIP: () => undefined, protectedAddresses: () => guard, now: new Date('2026-01-01T00:00:00Z'),
});

describe('planGatewayStatus', () => {
  it('routes the accepted extra CIDRs only, and reports the refused ones in a condition', () => {
    const result = planGatewayStatus(election({ [ANNOTATIONS.extraAllowedSourceCIDRs]: '0.0.0.0/1,192.0.2.0/24,not-a-cidr' }, [node('a', ['10.0.0.1'], ['10.244.0.0/24'])]));
    expect(result.status.nodes).toEqual([{ nodeName: 'a', privateIP: '10.0.0.1', subnets: ['10.244.0.0/24', '192.0.2.0/24'] }]);
    expect(result.refusedExtraCIDRs).toEqual(['"0.0.0.0/1" is wider than /8', '"not-a-cidr" is not a CIDR (address/prefix-length)']);
    expect(result.status.conditions?.find((c) => c.type === EXTRA_CIDRS_CONDITION)).toMatchObject({
      status: 'False', reason: 'Refused', observedGeneration: 3,
      message: `${ANNOTATIONS.extraAllowedSourceCIDRs}: refused "0.0.0.0/1" is wider than /8; "not-a-cidr" is not a CIDR (address/prefix-length)`,
    });
  });

  it('says when every entry is accepted, and has no such condition without the annotation', () => {
    expect(planGatewayStatus(election({ [ANNOTATIONS.extraAllowedSourceCIDRs]: '192.0.2.0/24' }, [node('a', ['10.0.0.1'])])).status.conditions?.find((c) => c.type === EXTRA_CIDRS_CONDITION)?.status).toBe('True');
    expect(planGatewayStatus(election({}, [node('a', ['10.0.0.1'])])).status.conditions?.map((c) => c.type)).toEqual(['Ready', 'Degraded']);
  });

  it('copies only IP literals and CIDRs from what a kubelet wrote into its Node', () => {
    const result = planGatewayStatus(election({}, [node('a', ['not-an-ip\nx', '10.0.0.2'], ['10.244.0.0/24', 'bogus', '10.245.0.1/24'])]));
    expect(result.status.nodes).toEqual([{ nodeName: 'a', privateIP: '10.0.0.2', subnets: ['10.244.0.0/24'] }]);
  });

  it('gives a dual-stack node listing IPv6 first its IPv4 InternalIP as private IP', () => {
    const result = planGatewayStatus(election({}, [node('a', ['fd00::1', '10.0.0.1'])]));
    expect(result.status.nodes?.[0]?.privateIP).toBe('10.0.0.1');
  });
});

describe('planGatewayStatus: election and conditions', () => {
  type Case = {
    endpoints: string[];
    active?: string[];
    members?: string[];
    down?: Record<string, string>;
    soft?: string[];
    /** Proxy endpoints instead of tunnel ones (the tunnel has one replica at most). */
    proxy?: { replicas: number };
    modes?: { present: boolean; l3: boolean; l7: boolean };
  };
  const plan = (c: Case) => planGatewayStatus({
    gateway: gatewayV1beta1Schema.parse({
      apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name: 'gw', generation: 1 },
      spec: { proxyConfig: { Replicas: c.proxy?.replicas ?? 1 }, endpoints: c.endpoints.map((nodeName) => ({ nodeName, type: c.proxy ? 'proxy' : 'tunnel' })) },
      status: { activeEndpoints: (c.active ?? []).map((nodeName) => ({ nodeName, type: 'tunnel', port: 4500 })) },
    }),
    members: (c.members ?? c.endpoints).map((n) => node(n, [`10.0.0.${n.charCodeAt(0) - 96}`])),
    modes: c.modes ?? { present: true, l3: true, l7: false },
    availability: (n) => {
      const reason = c.down?.[n.metadata.name];
      if (reason) return { available: false, reason };
      return c.soft?.includes(n.metadata.name) ? { available: false, reason: 'heartbeat expired', soft: true } : { available: true };
    },
    calicoBlocks: () => undefined, discoveredPublicIP: () => undefined, now: new Date('2026-01-01T00:00:00Z'),
  });

  it.each<[string, Case, { active: string[]; ready: string; degraded: string; elected?: string[]; lost?: string[]; message?: RegExp }]>([
    ['without raven-cfg nothing is elected', { endpoints: ['a'], modes: { present: false, l3: false, l7: false } }, { active: [], ready: 'False NoModeEnabled', degraded: 'False NoModeEnabled' }],
    ['with L3 off the tunnel is not requested', { endpoints: ['a'], modes: { present: true, l3: false, l7: true } }, { active: [], ready: 'True NothingRequested', degraded: 'False NothingRequested' }],
    ['the first available in spec order', { endpoints: ['b', 'a'] }, { active: ['b'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', elected: ['b'] }],
    ['an active endpoint stays (sticky)', { endpoints: ['a', 'b'], active: ['b'] }, { active: ['b'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', elected: [] }],
    ['a NotReady active endpoint fails over', { endpoints: ['a', 'b'], active: ['a'], down: { a: 'NotReady' } }, { active: ['b'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', elected: ['b'], lost: ['a'], message: /unavailable: a \(NotReady\)/ }],
    ['a listed node that is no member is never elected', { endpoints: ['a', 'b'], members: ['b'] }, { active: ['b'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', message: /a \(not a member\)/ }],
    ['an expired heartbeat keeps the active endpoint when nothing healthy is left', { endpoints: ['a', 'b'], active: ['a'], soft: ['a'], down: { b: 'NotReady' } }, { active: ['a'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive' }],
    ['an expired heartbeat yields to a healthy candidate', { endpoints: ['a', 'b'], active: ['a'], soft: ['a'] }, { active: ['b'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', lost: ['a'] }],
    ['fewer available than Replicas is Degraded', { endpoints: ['a', 'b'], proxy: { replicas: 2 }, modes: { present: true, l3: true, l7: true }, down: { b: 'Ready unknown' } }, { active: ['a'], ready: 'True EndpointsElected', degraded: 'True InsufficientEndpoints', message: /proxy: 1 of 2 active; unavailable: b \(Ready unknown\)/ }],
    ['Replicas of them when enough are available', { endpoints: ['c', 'a', 'b'], proxy: { replicas: 2 }, modes: { present: true, l3: false, l7: true } }, { active: ['a', 'c'], ready: 'True EndpointsElected', degraded: 'False AllRequestedActive', elected: ['a', 'c'] }],
    ['none available is not Ready', { endpoints: ['a'], down: { a: 'NotReady' } }, { active: [], ready: 'False NoEndpointAvailable', degraded: 'True InsufficientEndpoints', message: /tunnel: 0 of 1 active/ }],
  ])('%s', (_what, c, want) => {
    const result = plan(c);
    const cond = (type: string) => result.status.conditions?.find((x) => x.type === type);
    expect(result.status.activeEndpoints?.map((e) => e.nodeName)).toEqual(want.active);
    expect(`${cond('Ready')?.status} ${cond('Ready')?.reason}`).toBe(want.ready);
    expect(`${cond('Degraded')?.status} ${cond('Degraded')?.reason}`).toBe(want.degraded);
    if (want.elected) expect(result.elected.map((e) => e.nodeName)).toEqual(want.elected);
    expect(result.lost.map((e) => e.nodeName)).toEqual(want.lost ?? []);
    if (want.message) expect(cond('Ready')?.message).toMatch(want.message);
    for (const e of result.status.activeEndpoints ?? []) {
      expect(e).toMatchObject(c.proxy ? { port: 10262, config: { 'enable-l7-proxy': 'true' } } : { port: 4500, config: { 'enable-l3-tunnel': 'true' } });
    }
  });

  it('keeps a condition\'s lastTransitionTime while its status holds, and stamps a change', () => {
    const previous = [
      { type: 'Ready', status: 'True' as const, reason: 'EndpointsElected', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' },
      { type: 'Degraded', status: 'True' as const, reason: 'InsufficientEndpoints', message: 'x', lastTransitionTime: '2025-01-01T00:00:00Z' },
    ];
    const merged = mergeConditions(previous, [
      { type: 'Ready', status: 'True', reason: 'EndpointsElected', message: 'y' },
      { type: 'Degraded', status: 'False', reason: 'AllRequestedActive', message: 'y' },
    ], new Date('2026-01-01T00:00:00.123Z'));
    expect(merged.map((c) => c.lastTransitionTime)).toEqual(['2025-01-01T00:00:00Z', '2026-01-01T00:00:00Z']);
  });
});
