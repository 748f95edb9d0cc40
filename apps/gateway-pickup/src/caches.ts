import { CONFIGMAPS, HEARTBEAT, LABELS } from '@raven/api-types';
import { Informer, RESOURCES, isNotFound, type KubeClient, type Logger } from '@raven/controller-kit';
import type { Registry } from 'prom-client';
import { toNodeView, type Gateway, type NodeView } from '@raven/api-types';
import {
  toBlockAffinity, toConfigMap, toGateway, toHeartbeat, toService,
  type BlockAffinityView, type ConfigMapView, type HeartbeatView, type ServiceView,
} from './model.ts';

export const INDEX = { nodesByGateway: 'gateway', heartbeatsByNode: 'node', blocksByNode: 'node', servicesByGateway: 'gateway' } as const;

/** The shared caches of gateway-pickup. Every controller reads from these; none lists the API itself. */
export interface Caches {
  gateways: Informer<Gateway>;
  nodes: Informer<NodeView>;
  heartbeats: Informer<HeartbeatView>;
  ravenConfig: Informer<ConfigMapView>;
  services: Informer<ServiceView>;
  /** Calico IPAM blocks; absent when the cluster has no Calico CRDs. */
  blockAffinities?: Informer<BlockAffinityView>;
  all: Array<Informer<{ metadata: { name: string } }>>;
}

export async function createCaches(kube: KubeClient, log: Logger, registry: Registry, namespace: string): Promise<Caches> {
  let calico = true;
  try {
    await kube.list(RESOURCES.blockAffinities, { limit: 1 });
  } catch (err) {
    if (!isNotFound(err)) throw err;
    log.info('no Calico BlockAffinity CRD; subnets come from Node podCIDRs');
    calico = false;
  }
  return cacheInformers(kube, log, registry, namespace, { calico });
}

/** The informers, not started; `calico`: the cluster has Calico's BlockAffinity CRD. */
export function cacheInformers(kube: KubeClient, log: Logger, registry: Registry, namespace: string, opts: { calico: boolean }): Caches {
  const common = { kube, log, registry, metricPrefix: 'raven_pickup' };
  const gateways = new Informer<Gateway>({ ...common, type: RESOURCES.gateways, transform: toGateway });
  const nodes = new Informer<NodeView>({ ...common, type: RESOURCES.nodes, transform: toNodeView });
  nodes.addIndex(INDEX.nodesByGateway, (n) => (n.gateway ? [n.gateway] : []));
  const heartbeats = new Informer<HeartbeatView>({ ...common, type: RESOURCES.leases, namespace: HEARTBEAT.namespace, labelSelector: HEARTBEAT.label, transform: toHeartbeat });
  heartbeats.addIndex(INDEX.heartbeatsByNode, (h) => [h.node]);
  const ravenConfig = new Informer<ConfigMapView>({ ...common, type: RESOURCES.configMaps, namespace, fieldSelector: `metadata.name=${CONFIGMAPS.ravenConfig}`, transform: toConfigMap });
  const services = new Informer<ServiceView>({ ...common, type: RESOURCES.services, namespace, transform: toService });
  services.addIndex(INDEX.servicesByGateway, (s) => {
    const gw = s.metadata.labels?.[LABELS.gateway];
    return gw ? [gw] : [];
  });
  let blockAffinities: Informer<BlockAffinityView> | undefined;
  if (opts.calico) {
    blockAffinities = new Informer<BlockAffinityView>({ ...common, type: RESOURCES.blockAffinities, transform: toBlockAffinity });
    blockAffinities.addIndex(INDEX.blocksByNode, (b) => [b.spec.node]);
  }
  const all = [gateways, nodes, heartbeats, ravenConfig, services, ...(blockAffinities ? [blockAffinities] : [])] as unknown as Caches['all'];
  return { gateways, nodes, heartbeats, ravenConfig, services, blockAffinities, all };
}
