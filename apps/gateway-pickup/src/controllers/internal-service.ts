import { PORTS, SERVICES, activeEndpointsOfType, exposedProxyPorts, isExposed, type Gateway, type NodeView } from '@raven/api-types';
import { Controller, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import type { Caches } from '../caches.ts';
import { modeSwitches } from '../model.ts';
import { deleteIfExists, ensureObject } from './apply.ts';
import { addressTypeOf, endpointSlice, managedLabels, type EndpointSliceManifest, type ServiceManifest, type ServicePort } from './manifests.ts';

export interface InternalServicePlan {
  /** Undefined when L7 is off or no exposed Gateway declares a proxy port: then the Service and its slices go. */
  service?: ServiceManifest;
  /** The IPv4 slice always (maybe empty), the IPv6 one only with an IPv6 backend; a slice not listed goes. */
  slices: EndpointSliceManifest[];
  /** Ports declared as both HTTP and HTTPS somewhere; HTTPS wins, since a Service cannot carry both. */
  conflicts: number[];
}

const KEY = SERVICES.proxyInternal;
export const INTERNAL_SLICE_NAMES = { IPv4: `${KEY}-ipv4`, IPv6: `${KEY}-ipv6` } as const;

/**
 * x-raven-proxy-internal-svc: ports `http-<p>` → 10264 and `https-<p>` → 10263 from every exposed Gateway's proxy
 * port lists (deduplicated, so two gateways declaring one port yield one Service port), and as backends the
 * InternalIPs of their active proxy nodes, one EndpointSlice per address family.
 */
export function planInternalService(input: {
  l7: boolean;
  namespace: string;
  gateways: readonly Gateway[];
  nodeByName: (name: string) => NodeView | undefined;
}): InternalServicePlan {
  const { http, https, conflicts } = exposedProxyPorts(input.gateways);
  const byNumber = (a: number, b: number) => a - b;
  const ports: ServicePort[] = [
    ...[...http].sort(byNumber).map((p) => ({ name: `http-${p}`, port: p, targetPort: PORTS.proxyInternalInsecure, protocol: 'TCP' as const })),
    ...[...https].sort(byNumber).map((p) => ({ name: `https-${p}`, port: p, targetPort: PORTS.proxyInternalSecure, protocol: 'TCP' as const })),
  ];
  if (!input.l7 || ports.length === 0) return { slices: [], conflicts };
  const backends = new Map<string, string>();
  for (const gw of input.gateways.filter(isExposed)) {
    for (const e of activeEndpointsOfType(gw, 'proxy')) {
      const ip = input.nodeByName(e.nodeName)?.internalIPs[0];
      if (ip) backends.set(ip, e.nodeName);
    }
  }
  const sorted = [...backends].map(([ip, nodeName]) => ({ ip, nodeName })).sort((a, b) => (a.ip < b.ip ? -1 : 1));
  const service: ServiceManifest = {
    apiVersion: 'v1', kind: 'Service',
    metadata: { name: KEY, namespace: input.namespace, labels: { ...managedLabels } },
    spec: { type: 'ClusterIP', ports },
  };
  const slices = (['IPv4', 'IPv6'] as const).flatMap((family) => {
    const inFamily = sorted.filter((b) => addressTypeOf(b.ip) === family);
    return family === 'IPv6' && inFamily.length === 0 ? [] : [endpointSlice({ name: INTERNAL_SLICE_NAMES[family], service, addressType: family, backends: inFamily })];
  });
  return { service, slices, conflicts };
}

/**
 * What of one Gateway the internal Service depends on. An update that leaves it alone (a status write of a Gateway
 * that is not exposed, new conditions, ...) needs no reconcile, which would read every Gateway again.
 */
export function internalServiceInputs(gw: Gateway): string {
  if (!isExposed(gw)) return '';
  const proxy = gw.spec?.proxyConfig;
  return JSON.stringify([proxy?.proxyHTTPPort ?? '', proxy?.proxyHTTPSPort ?? '', activeEndpointsOfType(gw, 'proxy').map((e) => e.nodeName)]);
}

export function internalServiceController(opts: { kube: KubeClient; caches: Caches; log: Logger; registry: Registry; namespace: string; resyncMs: number }): Controller {
  const { kube, caches, namespace } = opts;
  // After one successful cleanup there is nothing to delete until we create the Service again.
  let absent = false;
  const controller = new Controller({
    name: 'gatewayinternalservice', log: opts.log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs, resyncKeys: () => [KEY],
    reconcile: async (_key, log) => {
      const l7 = modeSwitches(caches.ravenConfig.list()[0]).l7;
      const plan = planInternalService({ l7, namespace, gateways: caches.gateways.list(), nodeByName: (n) => caches.nodes.get(n) });
      if (!plan.service) {
        if (absent && !caches.services.get(`${namespace}/${KEY}`)) return;
        const slices = Object.values(INTERNAL_SLICE_NAMES).map((n) => deleteIfExists(kube, RESOURCES.endpointSlices, namespace, n));
        const removed = [await deleteIfExists(kube, RESOURCES.services, namespace, KEY), ...(await Promise.all(slices))];
        if (removed.some(Boolean)) log.info({ service: KEY, l7 }, 'internal proxy service removed');
        absent = true;
        return;
      }
      absent = false;
      if (plan.conflicts.length > 0) log.warn({ ports: plan.conflicts }, 'ports declared both as proxyHTTPPort and proxyHTTPSPort; serving them as HTTPS');
      const svcResult = await ensureObject(kube, RESOURCES.services, plan.service, ['spec']);
      for (const name of Object.values(INTERNAL_SLICE_NAMES)) {
        const slice = plan.slices.find((s) => s.metadata.name === name);
        if (slice) await ensureObject(kube, RESOURCES.endpointSlices, slice, ['addressType', 'endpoints', 'ports']);
        else await deleteIfExists(kube, RESOURCES.endpointSlices, namespace, name);
      }
      if (svcResult !== 'unchanged') {
        const backends = plan.slices.flatMap((s) => s.endpoints.map((e) => e.nodeName));
        log.info({ service: KEY, result: svcResult, ports: plan.service.spec.ports.map((p) => p.name), backends }, 'internal proxy service written');
      }
    },
  });
  const enqueue = () => controller.enqueue(KEY);
  caches.gateways.on({ add: enqueue, update: (o, g) => internalServiceInputs(o) !== internalServiceInputs(g) && enqueue(), delete: enqueue });
  caches.ravenConfig.on({ add: enqueue, update: enqueue, delete: enqueue });
  caches.nodes.on({ update: (o, n) => o.internalIPs[0] !== n.internalIPs[0] && enqueue() });
  caches.services.on({ delete: (s) => s.metadata.name === KEY && enqueue() });
  return controller;
}
