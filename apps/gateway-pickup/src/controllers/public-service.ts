import { createHash } from 'node:crypto';
import { GATEWAY_KIND, GROUP, LABELS, SERVICES, V1BETA1, endpointPort, type Endpoint, type Gateway, type NodeView } from '@raven/api-types';
import { Controller, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import { INDEX, type Caches } from '../caches.ts';
import { deleteIfExists, ensureObject } from './apply.ts';
import { addressTypeOf, endpointSlice, managedLabels, type EndpointSliceManifest, type ServiceManifest } from './manifests.ts';

const hash = (s: string, n = 8) => createHash('sha256').update(s).digest('hex').slice(0, n);

/** Stable, valid (≤ 63 chars, DNS-1035) name of the LoadBalancer Service of one active endpoint. */
export function publicServiceName(gateway: string, endpoint: Pick<Endpoint, 'nodeName' | 'type'>): string {
  const prefix = endpoint.type === 'proxy' ? SERVICES.proxyPublicPrefix : SERVICES.tunnelPublicPrefix;
  const gw = gateway.length > 34 ? `${gateway.slice(0, 25)}-${hash(gateway)}` : gateway;
  return `${prefix}-${gw}-${hash(endpoint.nodeName)}`.replace(/[^a-z0-9-]/g, '-');
}

export interface PublicServicePlan {
  endpoint: Endpoint;
  service: ServiceManifest;
  slice: EndpointSliceManifest;
}

/**
 * One LoadBalancer Service per active endpoint of an `exposeType: LoadBalancer` Gateway (none otherwise), owned by
 * the Gateway, with the endpoint node's InternalIP as its one backend.
 */
export function planPublicServices(input: {
  gateway: Gateway | undefined;
  namespace: string;
  nodeByName: (name: string) => NodeView | undefined;
}): PublicServicePlan[] {
  const { gateway, namespace } = input;
  if (!gateway || gateway.spec?.exposeType !== 'LoadBalancer') return [];
  const gw = gateway.metadata.name;
  const ownerReferences = [{ apiVersion: `${GROUP}/${V1BETA1}`, kind: GATEWAY_KIND, name: gw, uid: gateway.metadata.uid!, blockOwnerDeletion: false }];
  return (gateway.status?.activeEndpoints ?? []).map((endpoint) => {
    const name = publicServiceName(gw, endpoint);
    const port = endpointPort(endpoint);
    const labels = { ...managedLabels, [LABELS.gateway]: gw, [LABELS.gatewayType]: endpoint.type, [LABELS.endpointsName]: endpoint.nodeName };
    const service: ServiceManifest = {
      apiVersion: 'v1', kind: 'Service',
      metadata: { name, namespace, labels, ownerReferences },
      spec: { type: 'LoadBalancer', externalTrafficPolicy: 'Local', ports: [{ name: endpoint.type, port, targetPort: port, protocol: endpoint.type === 'tunnel' ? 'UDP' : 'TCP' }] },
    };
    const ip = input.nodeByName(endpoint.nodeName)?.internalIPs[0];
    const slice = endpointSlice({ name, service, addressType: ip ? addressTypeOf(ip) : 'IPv4', backends: ip ? [{ ip, nodeName: endpoint.nodeName }] : [] });
    return { endpoint, service, slice };
  });
}

/** What of one Gateway its LoadBalancer Services depend on; an update that leaves it alone needs no reconcile. */
export function publicServiceInputs(gw: Gateway): string {
  if (gw.spec?.exposeType !== 'LoadBalancer') return '';
  return JSON.stringify([gw.metadata.uid ?? '', (gw.status?.activeEndpoints ?? []).map((e) => [e.type, e.nodeName, endpointPort(e)])]);
}

export function publicServiceController(opts: { kube: KubeClient; caches: Caches; log: Logger; registry: Registry; namespace: string; resyncMs: number }): Controller {
  const { kube, caches, namespace } = opts;
  const controller = new Controller({
    name: 'gatewaypublicservice', log: opts.log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs,
    resyncKeys: () => [...new Set([...caches.gateways.keys(), ...caches.services.indexValues(INDEX.servicesByGateway)])],
    reconcile: async (name, baseLog) => {
      const log = baseLog.child({ gateway: name });
      const plan = planPublicServices({ gateway: caches.gateways.get(name), namespace, nodeByName: (n) => caches.nodes.get(n) });
      const wanted = new Set(plan.map((p) => p.service.metadata.name));
      for (const { endpoint, service, slice } of plan) {
        const result = await ensureObject(kube, RESOURCES.services, service, ['spec']);
        await ensureObject(kube, RESOURCES.endpointSlices, slice, ['addressType', 'endpoints', 'ports']);
        if (result !== 'unchanged') log.info({ service: service.metadata.name, endpoint: `${endpoint.type}/${endpoint.nodeName}`, result }, 'LoadBalancer service written');
      }
      // Whatever we created before for this gateway and no longer want goes, every time (upstream skipped this on AlreadyExists).
      for (const svc of caches.services.byIndex(INDEX.servicesByGateway, name)) {
        if (!svc.metadata.labels?.[LABELS.gatewayType] || wanted.has(svc.metadata.name)) continue;
        await deleteIfExists(kube, RESOURCES.endpointSlices, namespace, svc.metadata.name);
        if (await deleteIfExists(kube, RESOURCES.services, namespace, svc.metadata.name)) log.info({ service: svc.metadata.name }, 'stale LoadBalancer service removed');
      }
    },
  });
  caches.gateways.on({
    add: (g) => controller.enqueue(g.metadata.name),
    update: (o, g) => publicServiceInputs(o) !== publicServiceInputs(g) && controller.enqueue(g.metadata.name),
    delete: (g) => controller.enqueue(g.metadata.name),
  });
  caches.services.on({ delete: (s) => controller.enqueue(s.metadata.labels?.[LABELS.gateway]) });
  return controller;
}
