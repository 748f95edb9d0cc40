import type { Condition, Connection, Endpoint, Gateway } from '@raven/api-types';
import type { LeaseView, NodeSnapshot, Snapshot } from '../src/snapshot.ts';

export const NOW = Date.parse('2026-12-07T02:00:00Z');

export function gateway(name: string, opts: {
  exposeType?: 'PublicIP' | 'LoadBalancer'; underNAT?: boolean; endpoints?: Partial<Endpoint>[]; active?: Partial<Endpoint>[];
  ready?: Partial<Condition>; degraded?: Partial<Condition>; members?: string[]; connections?: Connection[];
} = {}): Gateway {
  const ep = (e: Partial<Endpoint>): Endpoint => ({ type: 'tunnel', nodeName: 'n', ...(opts.underNAT ? { underNAT: true } : {}), ...e });
  const cond = (type: string, c: Partial<Condition> | undefined): Condition[] => c ? [{ type, status: 'True', reason: 'R', message: '', lastTransitionTime: '2026-12-07T01:00:00Z', ...c }] : [];
  return {
    apiVersion: 'raven.openyurt.io/v1beta1', kind: 'Gateway', metadata: { name },
    spec: { proxyConfig: { Replicas: 1 }, tunnelConfig: { Replicas: 1 }, ...(opts.exposeType ? { exposeType: opts.exposeType } : {}), endpoints: (opts.endpoints ?? []).map(ep) },
    status: {
      activeEndpoints: (opts.active ?? []).map(ep),
      conditions: [...cond('Ready', opts.ready), ...cond('Degraded', opts.degraded)],
      nodes: (opts.members ?? []).map((nodeName) => ({ nodeName, subnets: ['10.244.0.0/24'] })),
      ...(opts.connections ? { connections: opts.connections } : {}),
    },
  };
}

export function node(name: string, gatewayName?: string, extra: Partial<NodeSnapshot> = {}): NodeSnapshot {
  return { name, labels: gatewayName ? { 'raven.openyurt.io/gateway': gatewayName } : {}, annotations: {}, internalIP: '10.0.0.1', ready: 'True', ...extra };
}

export function lease(component: 'tunnel' | 'proxy', holder: string, ageSeconds: number, extra: Partial<LeaseView> = {}): LeaseView {
  return { namespace: 'raven-heartbeats', name: `raven-${component}-${holder}`, component, holder, durationSeconds: 2, renewTime: NOW - ageSeconds * 1000, serverWriteTime: NOW - ageSeconds * 1000, ...extra };
}

export function snapshot(s: Partial<Snapshot> = {}): Snapshot {
  return {
    takenAt: NOW, namespace: 'kube-system', gateways: [], invalidGateways: [], nodes: [], heartbeats: [], pods: [],
    ravenConfig: { 'enable-l3-tunnel': 'true', 'enable-l7-proxy': 'true' }, psk: { secret: 'present', hasKey: true }, certificates: [], certificatesReadable: true,
    ...s,
  };
}

/** The walkthrough's three domains, connected and healthy. */
export function walkthrough(): Snapshot {
  const rtt = { last: '1.2ms', min: '1.0ms', average: '1.1ms', max: '2.0ms' };
  return snapshot({
    gateways: [
      gateway('gw-cloud', {
        exposeType: 'PublicIP', endpoints: [{ nodeName: 'cloud-1', publicIP: '47.0.0.1' }, { nodeName: 'cloud-1', type: 'proxy', publicIP: '47.0.0.1' }],
        active: [{ nodeName: 'cloud-1', publicIP: '47.0.0.1' }, { nodeName: 'cloud-1', type: 'proxy', publicIP: '47.0.0.1' }],
        ready: { reason: 'EndpointsElected' }, degraded: { status: 'False', reason: 'AllRequestedActive' }, members: ['cloud-1', 'cloud-2'],
        connections: [
          { gateway: 'gw-hangzhou', nodeName: 'hz-1', endpoint: '1.2.3.4:4500', status: 'Connected', latencyRTT: rtt },
          { gateway: 'gw-qingdao', nodeName: 'qd-1', endpoint: '5.6.7.8:4500', status: 'Connected', latencyRTT: rtt },
        ],
      }),
      gateway('gw-hangzhou', {
        underNAT: true, endpoints: [{ nodeName: 'hz-1' }], active: [{ nodeName: 'hz-1' }], ready: { reason: 'EndpointsElected' }, members: ['hz-1', 'hz-2'],
        connections: [
          { gateway: 'gw-cloud', nodeName: 'cloud-1', endpoint: '47.0.0.1:4500', status: 'Connected', latencyRTT: rtt },
          { gateway: 'gw-qingdao', nodeName: 'qd-1', status: 'Connected', relayedVia: 'gw-cloud', relayReason: 'symmetric NAT on both sides', latencyRTT: rtt },
        ],
      }),
      gateway('gw-qingdao', {
        underNAT: true, endpoints: [{ nodeName: 'qd-1' }], active: [{ nodeName: 'qd-1' }], ready: { reason: 'EndpointsElected' }, members: ['qd-1', 'qd-2'],
        connections: [
          { gateway: 'gw-cloud', nodeName: 'cloud-1', endpoint: '47.0.0.1:4500', status: 'Connected', latencyRTT: rtt },
          { gateway: 'gw-hangzhou', nodeName: 'hz-1', status: 'Connected', relayedVia: 'gw-cloud', latencyRTT: rtt },
        ],
      }),
    ],
    nodes: [node('cloud-1', 'gw-cloud', { externalIP: '47.0.0.1' }), node('cloud-2', 'gw-cloud'), node('hz-1', 'gw-hangzhou'), node('hz-2', 'gw-hangzhou'), node('qd-1', 'gw-qingdao'), node('qd-2', 'gw-qingdao')],
    heartbeats: [lease('tunnel', 'cloud-1', 0.3), lease('tunnel', 'hz-1', 0.4), lease('tunnel', 'qd-1', 0.2), lease('proxy', 'cloud-1', 0.1)],
    pickupLeader: { namespace: 'kube-system', name: 'raven-gateway-pickup', holder: 'pickup-a', durationSeconds: 15, renewTime: NOW - 1000 },
  });
}
