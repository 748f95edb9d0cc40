import { z } from 'zod';
import { ANNOTATIONS, LABELS } from './constants.ts';

/**
 * A Node as every Raven component keeps it in its caches: validated and projected to the fields any of them uses,
 * so memory stays flat with 10,000 Nodes (a full Node is several kB; a NodeView a few hundred bytes).
 */
export interface NodeView {
  metadata: { name: string; resourceVersion?: string; uid?: string };
  /** Its `raven.openyurt.io/gateway` label (an empty label is none). The node's kubelet may edit it. */
  gateway?: string;
  internalIPs: string[];
  externalIPs: string[];
  podCIDRs: string[];
  /** True, False, or Unknown (also when the condition is absent). */
  ready: 'True' | 'False' | 'Unknown';
  /** The node runs Calico with IPAM blocks (projectcalico.org annotations present). */
  calico: boolean;
  publicIPAnnotation?: string;
}

const rawNodeSchema = z.object({
  metadata: z.object({
    name: z.string(),
    resourceVersion: z.string().optional(),
    uid: z.string().optional(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.object({ podCIDR: z.string().optional(), podCIDRs: z.array(z.string()).optional() }).optional(),
  status: z
    .object({
      addresses: z.array(z.object({ type: z.string(), address: z.string() })).optional(),
      conditions: z.array(z.object({ type: z.string(), status: z.string() })).optional(),
    })
    .optional(),
});

export function toNodeView(raw: unknown): NodeView {
  const node = rawNodeSchema.parse(raw);
  const addresses = node.status?.addresses ?? [];
  const ready = node.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  const podCIDRs = (node.spec?.podCIDRs?.length ? node.spec.podCIDRs : [node.spec?.podCIDR]).filter((c): c is string => !!c);
  const annotations = node.metadata.annotations ?? {};
  return {
    metadata: { name: node.metadata.name, resourceVersion: node.metadata.resourceVersion, uid: node.metadata.uid },
    gateway: node.metadata.labels?.[LABELS.gateway] || undefined,
    internalIPs: addresses.filter((a) => a.type === 'InternalIP').map((a) => a.address),
    externalIPs: addresses.filter((a) => a.type === 'ExternalIP').map((a) => a.address),
    podCIDRs,
    ready: ready === 'True' || ready === 'False' ? ready : 'Unknown',
    calico: Object.keys(annotations).some((k) => k.startsWith('projectcalico.org/')),
    publicIPAnnotation: annotations[ANNOTATIONS.publicIP],
  };
}
