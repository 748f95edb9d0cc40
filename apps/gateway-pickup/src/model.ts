import { z } from 'zod';
import { HEARTBEAT, RAVEN_CFG_KEYS, gatewayV1beta1Schema, isHeartbeatLeaseOf, type Gateway, type HeartbeatComponent } from '@raven/api-types';

/** What the caches keep: each API object validated and projected to the fields the controllers use (Nodes: NodeView). */

const metaSchema = z.object({
  name: z.string(),
  namespace: z.string().optional(),
  resourceVersion: z.string().optional(),
  uid: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
});

export function toGateway(raw: unknown): Gateway {
  return gatewayV1beta1Schema.parse(raw);
}

const rawLeaseSchema = z.object({
  metadata: metaSchema,
  spec: z
    .object({ holderIdentity: z.string().nullish(), leaseDurationSeconds: z.number().nullish(), renewTime: z.string().nullish() })
    .optional(),
});

export interface HeartbeatView {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  component: HeartbeatComponent;
  node: string;
  durationMs: number;
  renewTime: string;
}

export function toHeartbeat(raw: unknown): HeartbeatView | undefined {
  const lease = rawLeaseSchema.parse(raw);
  const component = lease.metadata.labels?.[HEARTBEAT.label];
  if ((component !== 'tunnel' && component !== 'proxy') || !lease.spec?.holderIdentity) return undefined;
  // A Lease speaks only for the node it is named after, and only for the contract's duration.
  if (!isHeartbeatLeaseOf(lease.metadata.name, component, lease.spec.holderIdentity)) return undefined;
  return {
    metadata: { name: lease.metadata.name, namespace: lease.metadata.namespace, resourceVersion: lease.metadata.resourceVersion },
    component,
    node: lease.spec.holderIdentity,
    durationMs: HEARTBEAT.durationSeconds * 1_000,
    renewTime: lease.spec.renewTime ?? '',
  };
}

const rawConfigMapSchema = z.object({ metadata: metaSchema, data: z.record(z.string(), z.string()).optional() });
export type ConfigMapView = z.infer<typeof rawConfigMapSchema>;
export const toConfigMap = (raw: unknown): ConfigMapView => rawConfigMapSchema.parse(raw);

const rawServiceSchema = z.object({
  metadata: metaSchema,
  spec: z.object({ clusterIP: z.string().optional(), type: z.string().optional() }).loose().optional(),
  status: z.object({ loadBalancer: z.object({ ingress: z.array(z.object({ ip: z.string().optional(), hostname: z.string().optional() })).optional() }).optional() }).optional(),
});
export type ServiceView = z.infer<typeof rawServiceSchema>;
export const toService = (raw: unknown): ServiceView => rawServiceSchema.parse(raw);

const rawBlockAffinitySchema = z.object({
  metadata: metaSchema,
  spec: z.object({ node: z.string(), cidr: z.string(), state: z.string().optional(), deleted: z.union([z.string(), z.boolean()]).optional() }),
});
export type BlockAffinityView = z.infer<typeof rawBlockAffinitySchema>;
export const toBlockAffinity = (raw: unknown): BlockAffinityView => rawBlockAffinitySchema.parse(raw);

export interface ModeSwitches {
  /** raven-cfg exists; upstream elects nothing without it. */
  present: boolean;
  l3: boolean;
  l7: boolean;
}

export function modeSwitches(cfg: ConfigMapView | undefined): ModeSwitches {
  if (!cfg) return { present: false, l3: false, l7: false };
  return { present: true, l3: cfg.data?.[RAVEN_CFG_KEYS.l3Tunnel] === 'true', l7: cfg.data?.[RAVEN_CFG_KEYS.l7Proxy] === 'true' };
}
