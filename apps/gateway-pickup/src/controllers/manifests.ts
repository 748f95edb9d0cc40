import { isIPv6 } from 'node:net';
import { LABELS, MANAGED_BY } from '@raven/api-types';

/** The objects gateway-pickup owns, as the pure plans build them and the reconcilers apply them (apply.ts). */

export const ENDPOINTSLICE_MANAGER = 'raven-gateway-pickup.openyurt.io';
export const managedLabels = { [LABELS.managedBy]: MANAGED_BY } as const;

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  blockOwnerDeletion: boolean;
}

interface Metadata {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  ownerReferences?: OwnerReference[];
}

export type ServicePort = { name: string; port: number; targetPort: number; protocol: 'TCP' | 'UDP' };

export type ServiceManifest = {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: Metadata;
  spec: { type: 'ClusterIP' | 'LoadBalancer'; externalTrafficPolicy?: 'Local'; ports: ServicePort[] };
};

export type AddressType = 'IPv4' | 'IPv6';

export type EndpointSliceManifest = {
  apiVersion: 'discovery.k8s.io/v1';
  kind: 'EndpointSlice';
  metadata: Metadata;
  addressType: AddressType;
  endpoints: Array<{ addresses: [string]; conditions: { ready: true }; nodeName: string }>;
  ports: Array<{ name: string; port: number; protocol: 'TCP' | 'UDP' }>;
};

export const addressTypeOf = (ip: string): AddressType => (isIPv6(ip) ? 'IPv6' : 'IPv4');

/** The EndpointSlice of a selectorless Service: each backend ready, its ports the Service's target ports. */
export function endpointSlice(opts: {
  name: string;
  service: ServiceManifest;
  addressType: AddressType;
  backends: ReadonlyArray<{ ip: string; nodeName: string }>;
}): EndpointSliceManifest {
  const { metadata } = opts.service;
  return {
    apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
    metadata: {
      name: opts.name, namespace: metadata.namespace,
      labels: { ...metadata.labels, 'kubernetes.io/service-name': metadata.name, 'endpointslice.kubernetes.io/managed-by': ENDPOINTSLICE_MANAGER },
      ...(metadata.ownerReferences ? { ownerReferences: metadata.ownerReferences } : {}),
    },
    addressType: opts.addressType,
    endpoints: opts.backends.map((b) => ({ addresses: [b.ip], conditions: { ready: true }, nodeName: b.nodeName })),
    ports: opts.service.spec.ports.map((p) => ({ name: p.name, port: p.targetPort, protocol: p.protocol })),
  };
}
