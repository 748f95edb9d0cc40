import { createHash } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { GATEWAY_KIND, GROUP, LABELS, SERVICES, V1BETA1, endpointPort, type Endpoint, type Gateway } from '@raven/api-types';
import { Controller, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import { INDEX, type Caches } from '../caches.ts';
import { ENDPOINTSLICE_MANAGER, deleteIfExists, ensureObject, managedLabels } from './apply.ts';

const hash = (s: string, n = 8) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Stable, valid (≤ 63 chars, DNS-1035) name of the LoadBalancer Service of one active endpoint. */
export function publicServiceName(gateway: string, endpoint: Pick<Endpoint, 'nodeName' | 'type'>): string {
  const prefix = endpoint.type === 'proxy' ? SERVICES.proxyPublicPrefix : SERVICES.tunnelPublicPrefix;
  const gw = gateway.length > 34 ? `${gateway.slice(0, 25)}-${hash(gateway)}` : gateway;
  return `${prefix}-${gw}-${hash(endpoint.nodeName)}`.replace(/[^a-z0-9-]/g, '-');
}

export interface PublicServicePlan {
  name: string;
  endpoint: Endpoint;
}

/** One LoadBalancer Service per active endpoint of an `exposeType: LoadBalancer` Gateway; none otherwise. */
export function planPublicServices(gateway: Gateway | undefined): PublicServicePlan[] {
  if (!gateway || gateway.spec?.exposeType !== 'LoadBalancer') return [];
  return (gateway.status?.activeEndpoints ?? []).map((endpoint) => ({ name: publicServiceName(gateway.metadata.name, endpoint), endpoint }));
}

export function publicServiceController(opts: { kube: KubeClient; caches: Caches; log: Logger; registry: Registry; namespace: string; resyncMs: number }): Controller {
  const { kube, caches, namespace } = opts;
  const controller = new Controller({
    name: 'gatewaypublicservice', log: opts.log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs,
    resyncKeys: () => [...new Set([...caches.gateways.keys(), ...caches.services.indexValues(INDEX.servicesByGateway)])],
    reconcile: async (name, baseLog) => {
      const log = baseLog.child({ gateway: name });
      const gateway = caches.gateways.get(name);
      const plan = planPublicServices(gateway);
      const wanted = new Set(plan.map((p) => p.name));
      for (const { name: svcName, endpoint } of plan) {
        const port = endpointPort(endpoint);
        const protocol = endpoint.type === 'tunnel' ? 'UDP' : 'TCP';
        const labels = { ...managedLabels, [LABELS.gateway]: name, [LABELS.gatewayType]: endpoint.type, [LABELS.endpointsName]: endpoint.nodeName };
        const ownerReferences = [{ apiVersion: `${GROUP}/${V1BETA1}`, kind: GATEWAY_KIND, name, uid: gateway!.metadata.uid!, blockOwnerDeletion: false }];
        const result = await ensureObject(kube, RESOURCES.services, {
          apiVersion: 'v1', kind: 'Service',
          metadata: { name: svcName, namespace, labels, ownerReferences },
          spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: endpoint.type, port, targetPort: port, protocol }] },
        }, ['spec']);
        const ip = caches.nodes.get(endpoint.nodeName)?.internalIPs[0];
        await ensureObject(kube, RESOURCES.endpointSlices, {
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
          metadata: { name: svcName, namespace, labels: { ...labels, 'kubernetes.io/service-name': svcName, 'endpointslice.kubernetes.io/managed-by': ENDPOINTSLICE_MANAGER }, ownerReferences },
          addressType: ip && isIPv6(ip) ? 'IPv6' : 'IPv4',
          endpoints: ip ? [{ addresses: [ip], conditions: { ready: true }, nodeName: endpoint.nodeName }] : [],
          ports: [{ name: endpoint.type, port, protocol }],
        }, ['addressType', 'endpoints', 'ports']);
        if (result !== 'unchanged') log.info({ service: svcName, endpoint: `${endpoint.type}/${endpoint.nodeName}`, result }, 'LoadBalancer service written');
      }
      // Whatever we created before for this gateway and no longer want goes, every time (upstream skipped this on AlreadyExists).
      for (const svc of caches.services.byIndex(INDEX.servicesByGateway, name)) {
        if (!svc.metadata.labels?.[LABELS.gatewayType] || wanted.has(svc.metadata.name)) continue;
        await deleteIfExists(kube, RESOURCES.endpointSlices, namespace, svc.metadata.name);
        if (await deleteIfExists(kube, RESOURCES.services, namespace, svc.metadata.name)) log.info({ service: svc.metadata.name }, 'stale LoadBalancer service removed');
      }
    },
  });
  caches.gateways.on({ add: (g) => controller.enqueue(g.metadata.name), update: (_o, g) => controller.enqueue(g.metadata.name), delete: (g) => controller.enqueue(g.metadata.name) });
  caches.services.on({ delete: (s) => controller.enqueue(s.metadata.labels?.[LABELS.gateway]) });
  return controller;
}
