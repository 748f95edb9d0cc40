import { EVENTS, GROUP, LABELS, V1BETA1, endpointPort, type EndpointType, type Gateway, type NodeView } from '@raven/api-types';
import {
  Controller, type EventRecorder, RESOURCES, deepEqual, writeStatus, type KubeClient, type Logger,
} from '@raven/controller-kit';
import { Gauge, type Registry } from 'prom-client';
import { INDEX, type Caches } from '../caches.ts';
import { EXTRA_CIDRS_CONDITION, planGatewayStatus, requestedEndpoints, type Availability } from '../election.ts';
import type { HeartbeatTracker } from '../heartbeats.ts';
import { modeSwitches, toGateway, type ConfigMapView } from '../model.ts';
import { FIELD_MANAGER } from './apply.ts';

export interface GatewayStatusOptions {
  kube: KubeClient;
  caches: Caches;
  heartbeats: HeartbeatTracker;
  events: EventRecorder;
  log: Logger;
  registry: Registry;
  resyncMs: number;
  workers: number;
  /** Admin opt-in: a node's ExternalIP is its public IP when neither spec nor annotation gives one. */
  publicIPFromExternalIP: boolean;
  /** Ranges no extra allowed source CIDR may overlap (the Service range, the apiserver's network). */
  protectedCidrs?: readonly string[];
}

/** Projected node fields that matter for election and status.nodes (kubelet heartbeats change none of them). */
const nodeFingerprint = (n: NodeView) => JSON.stringify([n.gateway, n.internalIPs, n.externalIPs, n.podCIDRs, n.ready, n.calico, n.publicIPAnnotation]);

/** Election and status: writes each Gateway's activeEndpoints, nodes and conditions, and the elected/lost Events. */
export function gatewayStatusController(opts: GatewayStatusOptions): Controller {
  const { kube, caches, heartbeats, log } = opts;

  const availability = (node: NodeView, type: EndpointType): Availability => {
    if (node.ready !== 'True') return { available: false, reason: node.ready === 'False' ? 'NotReady' : 'Ready unknown' };
    const hb = heartbeats.state(type, node.metadata.name);
    return hb.kind === 'expired' ? { available: false, reason: 'heartbeat expired', soft: true } : { available: true };
  };

  const discoveredPublicIP = (gateway: Gateway) => (node: NodeView, type: EndpointType): string | undefined => {
    if (gateway.spec?.exposeType === 'LoadBalancer') {
      const svc = caches.services.byIndex(INDEX.servicesByGateway, gateway.metadata.name).find(
        (s) => s.metadata.labels?.[LABELS.gatewayType] === type && s.metadata.labels?.[LABELS.endpointsName] === node.metadata.name,
      );
      const ingress = svc?.status?.loadBalancer?.ingress?.find((i) => i.ip)?.ip;
      if (ingress) return ingress;
    }
    return node.publicIPAnnotation || (opts.publicIPFromExternalIP ? node.externalIPs[0] : undefined);
  };

  /** Every node address and every public address of any Gateway, plus the configured ranges. */
  const protectedAddresses = () => {
    const ips = new Set<string>();
    for (const n of caches.nodes.list()) for (const ip of [...n.internalIPs, ...n.externalIPs, ...(n.publicIPAnnotation ? [n.publicIPAnnotation] : [])]) ips.add(ip);
    for (const g of caches.gateways.list()) for (const e of [...(g.spec?.endpoints ?? []), ...(g.status?.activeEndpoints ?? [])]) if (e.publicIP) ips.add(e.publicIP);
    for (const s of caches.services.list()) if (s.spec?.clusterIP && s.spec.clusterIP !== 'None') ips.add(s.spec.clusterIP);
    return { ips: [...ips], cidrs: opts.protectedCidrs ?? [] };
  };

  const reconcile = async (name: string, baseLog: Logger): Promise<void> => {
    const rlog = baseLog.child({ gateway: name });
    const cached = caches.gateways.get(name);
    if (!cached) {
      rlog.debug('gateway gone; nothing to do');
      return;
    }
    const members = caches.nodes.byIndex(INDEX.nodesByGateway, name);
    const modes = modeSwitches(caches.ravenConfig.list()[0]);
    const calicoBlocks = (node: string) =>
      caches.blockAffinities?.byIndex(INDEX.blocksByNode, node).filter((b) => b.spec.state === 'confirmed' && String(b.spec.deleted ?? 'false') !== 'true').map((b) => b.spec.cidr).sort();
    let plan: ReturnType<typeof planGatewayStatus> | undefined;
    const wrote = await writeStatus(kube, RESOURCES.gateways, { name }, cached as Gateway & { metadata: { resourceVersion?: string } }, (current) => {
      plan = planGatewayStatus({ gateway: current, members, modes, availability, calicoBlocks, discoveredPublicIP: discoveredPublicIP(current), protectedAddresses, now: new Date() });
      const old = current.status ?? {};
      const unchanged = deepEqual(old.activeEndpoints ?? [], plan.status.activeEndpoints) && deepEqual(old.nodes ?? [], plan.status.nodes) && deepEqual(old.conditions ?? [], plan.status.conditions);
      if (unchanged) return undefined;
      // Peer reports come from the active tunnel node; a new one starts with none rather than its predecessor's.
      const tunnelNode = (eps: typeof old.activeEndpoints) => eps?.find((e) => e.type === 'tunnel')?.nodeName;
      const connections = tunnelNode(old.activeEndpoints) === tunnelNode(plan.status.activeEndpoints) ? old.connections : undefined;
      return { ...old, ...plan.status, connections };
    }, { fieldManager: FIELD_MANAGER, parse: toGateway });

    if (wrote && plan) {
      const refusedBefore = cached.status?.conditions?.find((c) => c.type === EXTRA_CIDRS_CONDITION && c.status === 'False')?.message;
      const refusedNow = plan.status.conditions?.find((c) => c.type === EXTRA_CIDRS_CONDITION && c.status === 'False')?.message;
      if (refusedNow && refusedNow !== refusedBefore) {
        rlog.warn({ refused: plan.refusedExtraCIDRs }, 'refused entries of the extra-allowed-source-cidrs annotation');
        const target = { apiVersion: `${GROUP}/${V1BETA1}`, kind: 'Gateway', name, uid: cached.metadata.uid };
        void opts.events.record(target, { type: 'Warning', reason: EVENTS.extraCIDRsRefused, action: 'Validate', note: refusedNow.slice(0, 1024) });
      }
      const active = plan.status.activeEndpoints ?? [];
      rlog.info({ active: active.map((e) => `${e.type}/${e.nodeName}`), elected: plan.elected.length, lost: plan.lost.length }, 'status written');
      const target = { apiVersion: `${GROUP}/${V1BETA1}`, kind: 'Gateway', name, uid: cached.metadata.uid };
      for (const e of plan.elected) {
        void opts.events.record(target, { type: 'Normal', reason: EVENTS.elected, action: 'Elect', note: `${e.type} endpoint ${e.nodeName}:${endpointPort(e)} elected` });
      }
      for (const e of plan.lost) {
        void opts.events.record(target, { type: 'Warning', reason: EVENTS.lost, action: 'Elect', note: `${e.type} endpoint ${e.nodeName} is no longer active` });
      }
    } else {
      rlog.debug('status up to date');
    }
    scheduleExpiryCheck(name, members);
  };

  const controller = new Controller({
    name: 'gatewaypickup', log, registry: opts.registry, metricPrefix: 'raven_pickup', workers: opts.workers,
    resyncMs: opts.resyncMs, resyncKeys: () => caches.gateways.keys(), reconcile,
  });

  // Re-run exactly when the earliest fresh heartbeat of a member would expire, so failover does not wait for an event.
  function scheduleExpiryCheck(name: string, members: NodeView[]): void {
    let earliest = Infinity;
    for (const node of members) {
      for (const type of ['tunnel', 'proxy'] as const) {
        const hb = heartbeats.state(type, node.metadata.name);
        if (hb.kind === 'fresh') earliest = Math.min(earliest, hb.expiresAt);
      }
    }
    if (earliest !== Infinity) controller.queue.addAfter(name, earliest - Date.now() + 5);
  }

  exportGatewayMetrics(opts.registry, caches);

  const enqueueAll = () => caches.gateways.keys().forEach((k) => controller.enqueue(k));
  caches.gateways.on({ add: (g) => controller.enqueue(g.metadata.name), update: (_o, g) => controller.enqueue(g.metadata.name), delete: (g) => controller.enqueue(g.metadata.name) });
  caches.nodes.on({
    add: (n) => controller.enqueue(n.gateway),
    delete: (n) => controller.enqueue(n.gateway),
    update: (o, n) => {
      if (nodeFingerprint(o) === nodeFingerprint(n)) return;
      controller.enqueue(o.gateway);
      if (n.gateway !== o.gateway) controller.enqueue(n.gateway);
    },
  });
  const gatewayOfNode = (node: string) => caches.nodes.get(node)?.gateway;
  caches.heartbeats.on({
    add: (h) => {
      heartbeats.observe(h);
      controller.enqueue(gatewayOfNode(h.node));
    },
    update: (_o, h) => {
      if (heartbeats.observe(h)) controller.enqueue(gatewayOfNode(h.node));
    },
    delete: (h) => {
      heartbeats.forget(h);
      controller.enqueue(gatewayOfNode(h.node));
    },
  });
  caches.ravenConfig.on({ add: enqueueAll, update: enqueueAll, delete: enqueueAll });
  caches.services.on({
    add: (s) => controller.enqueue(s.metadata.labels?.[LABELS.gateway]),
    update: (_o, s) => controller.enqueue(s.metadata.labels?.[LABELS.gateway]),
  });
  caches.blockAffinities?.on({
    add: (b) => controller.enqueue(gatewayOfNode(b.spec.node)),
    update: (_o, b) => controller.enqueue(gatewayOfNode(b.spec.node)),
    delete: (b) => controller.enqueue(gatewayOfNode(b.spec.node)),
  });
  return controller;
}

/**
 * The per-Gateway gauges, read from the written status at scrape time: what the API says, whichever replica is
 * scraped. A deleted Gateway's series go with it (each scrape starts from a reset).
 */
export function exportGatewayMetrics(registry: Registry, caches: { gateways: { list(): Gateway[] }; ravenConfig: { list(): ConfigMapView[] } }): void {
  const conditionGauge = (name: string, type: 'Ready' | 'Degraded', help: string) => new Gauge({
    name, help, labelNames: ['gateway'], registers: [registry],
    collect() {
      this.reset();
      for (const g of caches.gateways.list()) this.set({ gateway: g.metadata.name }, g.status?.conditions?.find((c) => c.type === type)?.status === 'True' ? 1 : 0);
    },
  });
  conditionGauge('raven_gateway_ready', 'Ready', '1 while the Gateway\'s Ready condition is True (its requested endpoints have at least one elected)');
  conditionGauge('raven_gateway_degraded', 'Degraded', '1 while the Gateway\'s Degraded condition is True (fewer endpoints active than requested)');
  new Gauge({
    name: 'raven_gateway_active_endpoints', help: 'Elected endpoints of a Gateway by type', labelNames: ['gateway', 'type'], registers: [registry],
    collect() {
      this.reset();
      for (const g of caches.gateways.list()) {
        for (const type of ['tunnel', 'proxy'] as const) this.set({ gateway: g.metadata.name, type }, (g.status?.activeEndpoints ?? []).filter((e) => e.type === type).length);
      }
    },
  });
  new Gauge({
    name: 'raven_gateway_requested_endpoints', help: 'Endpoints a Gateway asks for by type (0 when the mode is off or none is listed)', labelNames: ['gateway', 'type'], registers: [registry],
    collect() {
      this.reset();
      const modes = modeSwitches(caches.ravenConfig.list()[0]);
      for (const g of caches.gateways.list()) {
        for (const type of ['tunnel', 'proxy'] as const) this.set({ gateway: g.metadata.name, type }, requestedEndpoints(g, modes, type));
      }
    },
  });
}
