import { CONFIGMAPS, EDGE_TUNNEL_NODES_KEY, SERVICES, type NodeView } from '@raven/api-types';
import { Controller, RESOURCES, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import type { Caches } from '../caches.ts';
import { modeSwitches } from '../model.ts';
import { ensureObject } from './apply.ts';
import { managedLabels } from './manifests.ts';

/**
 * The hosts file CoreDNS serves to cloud components, in upstream's format: sorted `<ip>\t<nodeName>` lines with no
 * trailing newline. With L7 on and the internal proxy Service allocated, every node name resolves to its ClusterIP
 * (so requests to node names enter the proxy); otherwise each node resolves to its InternalIP.
 */
export function tunnelNodesFile(nodes: readonly NodeView[], proxyClusterIP: string | undefined): string {
  return nodes
    .map((n) => [proxyClusterIP ?? n.internalIPs[0], n.metadata.name] as const)
    .filter((pair): pair is readonly [string, string] => !!pair[0])
    .map(([ip, name]) => `${ip}\t${name}`)
    .sort()
    .join('\n');
}

const KEY = CONFIGMAPS.edgeTunnelNodes;

export function dnsController(opts: { kube: KubeClient; caches: Caches; log: Logger; registry: Registry; namespace: string; resyncMs: number }): Controller {
  const { kube, caches, namespace } = opts;
  const proxyClusterIP = (): string | undefined => {
    if (!modeSwitches(caches.ravenConfig.list()[0]).l7) return undefined;
    const ip = caches.services.get(`${namespace}/${SERVICES.proxyInternal}`)?.spec?.clusterIP;
    return ip && ip !== 'None' ? ip : undefined;
  };
  const controller = new Controller({
    name: 'gatewaydns', log: opts.log, registry: opts.registry, metricPrefix: 'raven_pickup', resyncMs: opts.resyncMs, resyncKeys: () => [KEY],
    reconcile: async (_key, log) => {
      const data = { [EDGE_TUNNEL_NODES_KEY]: tunnelNodesFile(caches.nodes.list(), proxyClusterIP()) };
      const result = await ensureObject(kube, RESOURCES.configMaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: KEY, namespace, labels: managedLabels }, data }, ['data']);
      if (result !== 'unchanged') log.info({ configmap: KEY, result, lines: data[EDGE_TUNNEL_NODES_KEY].split('\n').filter(Boolean).length }, 'DNS records written');
    },
  });
  const enqueue = () => controller.enqueue(KEY);
  const addressOf = (n: NodeView) => n.internalIPs[0];
  caches.nodes.on({ add: enqueue, delete: enqueue, update: (o, n) => addressOf(o) !== addressOf(n) && enqueue() });
  const isProxySvc = (s: { metadata: { name: string } }) => s.metadata.name === SERVICES.proxyInternal;
  caches.services.on({ add: (s) => isProxySvc(s) && enqueue(), update: (o, s) => isProxySvc(s) && o.spec?.clusterIP !== s.spec?.clusterIP && enqueue(), delete: (s) => isProxySvc(s) && enqueue() });
  caches.ravenConfig.on({ add: enqueue, update: enqueue, delete: enqueue });
  return controller;
}
