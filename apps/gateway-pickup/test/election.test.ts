import { describe, expect, it } from 'vitest';
import { ANNOTATIONS, gatewayV1beta1Schema } from '@raven/api-types';
import { EXTRA_CIDRS_CONDITION, planGatewayStatus, screenExtraCIDRs, type ElectionInput } from '../src/election.ts';
import type { NodeView } from '../src/model.ts';

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
