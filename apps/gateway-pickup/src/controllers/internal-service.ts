import { isIPv6 } from 'node:net';
import { PORTS, SERVICES, activeEndpointsOfType, isExposed, parsePortList, type Gateway } from '@raven/api-types';
import { Controller, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import type { Caches } from '../caches.ts';
import { modeSwitches, type NodeView } from '../model.ts';
import { ENDPOINTSLICE_MANAGER, deleteIfExists, ensureObject, managedLabels } from './apply.ts';

export interface InternalServicePlan {
  ports: Array<{ name: string; port: number; targetPort: number }>;
  /** Ports declared as both HTTP and HTTPS somewhere; HTTPS wins, since a Service cannot carry both. */
  conflicts: number[];
  addresses: Array<{ ip: string; nodeName: string }>;
}

/**
 * Ports `http-<p>` → 10264 and `https-<p>` → 10263 from every exposed Gateway's proxy port lists (deduplicated,
 * so two gateways declaring one port yield one Service port), and the InternalIPs of their active proxy nodes.
 */
export function planInternalService(gateways: readonly Gateway[], nodeByName: (name: string) => NodeView | undefined): InternalServicePlan {
  const exposed = gateways.filter(isExposed);
  const http = new Set<number>();
  const https = new Set<number>();
  for (const gw of exposed) {
    for (const p of safePorts(gw.spec?.proxyConfig?.proxyHTTPPort)) http.add(p);
    for (const p of safePorts(gw.spec?.proxyConfig?.proxyHTTPSPort)) https.add(p);
  }
  const conflicts = [...http].filter((p) => https.has(p)).sort((a, b) => a - b);
  const ports = [
    ...[...http].filter((p) => !https.has(p)).sort((a, b) => a - b).map((p) => ({ name: `http-${p}`, port: p, targetPort: PORTS.proxyInternalInsecure })),
    ...[...https].sort((a, b) => a - b).map((p) => ({ name: `https-${p}`, port: p, targetPort: PORTS.proxyInternalSecure })),
  ];
  const addresses = new Map<string, string>();
  for (const gw of exposed) {
    for (const e of activeEndpointsOfType(gw, 'proxy')) {
      const ip = nodeByName(e.nodeName)?.internalIPs[0];
      if (ip) addresses.set(ip, e.nodeName);
    }
  }
  return { ports, conflicts, addresses: [...addresses].map(([ip, nodeName]) => ({ ip, nodeName })).sort((a, b) => (a.ip < b.ip ? -1 : 1)) };
}

function safePorts(list: string | undefined): number[] {
  try {
    return parsePortList(list);
  } catch {
    return []; // the CRD rejects malformed lists; an object stored before that rule existed contributes nothing
  }
}

const KEY = SERVICES.proxyInternal;

export function internalServiceController(opts: { kube: KubeClient; caches: Caches; log: Logger; registry: Registry; namespace: string; resyncMs: number }): Controller {
  const { kube, caches, namespace } = opts;
  // After one successful cleanup there is nothing to delete until we create the Service again.
  let absent = false;
  const controller = new Controller({
    name: 'gatewayinternalservice', log: opts.log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs, resyncKeys: () => [KEY],
    reconcile: async (_key, log) => {
      const l7 = modeSwitches(caches.ravenConfig.list()[0]).l7;
      const plan = planInternalService(caches.gateways.list(), (n) => caches.nodes.get(n));
      const sliceNames = { IPv4: `${KEY}-ipv4`, IPv6: `${KEY}-ipv6` } as const;
      if (!l7 || plan.ports.length === 0) {
        if (absent && !caches.services.get(`${namespace}/${KEY}`)) return;
        const removed = [await deleteIfExists(kube, RESOURCES.services, namespace, KEY), ...(await Promise.all(Object.values(sliceNames).map((n) => deleteIfExists(kube, RESOURCES.endpointSlices, namespace, n))))];
        if (removed.some(Boolean)) log.info({ service: KEY, l7 }, 'internal proxy service removed');
        absent = true;
        return;
      }
      absent = false;
      if (plan.conflicts.length > 0) log.warn({ ports: plan.conflicts }, 'ports declared both as proxyHTTPPort and proxyHTTPSPort; serving them as HTTPS');
      const svcResult = await ensureObject(kube, RESOURCES.services, {
        apiVersion: 'v1', kind: 'Service',
        metadata: { name: KEY, namespace, labels: managedLabels },
        spec: { type: 'ClusterIP', ports: plan.ports.map((p) => ({ name: p.name, port: p.port, targetPort: p.targetPort, protocol: 'TCP' })) },
      }, ['spec']);
      const slicePorts = plan.ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: 'TCP' }));
      for (const family of ['IPv4', 'IPv6'] as const) {
        const addresses = plan.addresses.filter((a) => (family === 'IPv6') === isIPv6(a.ip));
        if (addresses.length === 0 && family === 'IPv6') {
          await deleteIfExists(kube, RESOURCES.endpointSlices, namespace, sliceNames.IPv6);
          continue;
        }
        await ensureObject(kube, RESOURCES.endpointSlices, {
          apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
          metadata: { name: sliceNames[family], namespace, labels: { ...managedLabels, 'kubernetes.io/service-name': KEY, 'endpointslice.kubernetes.io/managed-by': ENDPOINTSLICE_MANAGER } },
          addressType: family,
          endpoints: addresses.map((a) => ({ addresses: [a.ip], conditions: { ready: true }, nodeName: a.nodeName })),
          ports: slicePorts,
        }, ['addressType', 'endpoints', 'ports']);
      }
      if (svcResult !== 'unchanged') log.info({ service: KEY, result: svcResult, ports: plan.ports.map((p) => p.name), backends: plan.addresses.map((a) => a.nodeName) }, 'internal proxy service written');
    },
  });
  const enqueue = () => controller.enqueue(KEY);
  caches.gateways.on({ add: enqueue, update: enqueue, delete: enqueue });
  caches.ravenConfig.on({ add: enqueue, update: enqueue, delete: enqueue });
  caches.nodes.on({ update: (o, n) => o.internalIPs[0] !== n.internalIPs[0] && enqueue() });
  caches.services.on({ delete: (s) => s.metadata.name === KEY && enqueue() });
  return controller;
}
