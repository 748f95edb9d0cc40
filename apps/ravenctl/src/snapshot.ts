import { CONFIGMAPS, HEARTBEAT, PSK_SECRET, SYSTEM_NAMESPACE, gatewayV1beta1Schema, pskFingerprint, type Gateway } from '@raven/api-types';
import { RESOURCES, isNotFound, type KubeClient } from '@raven/controller-kit';
import { z } from 'zod';

/**
 * Everything ravenctl reads from the API, parsed once where it enters. The commands (show, graph, diagnose,
 * gather) are pure functions of a snapshot, so they are tested with tables of snapshots and no apiserver.
 */
export interface Snapshot {
  /** Local time when the snapshot was taken (ms since the epoch). */
  takenAt: number;
  /** Namespace of Raven's system objects. */
  namespace: string;
  gateways: Gateway[];
  /** Gateways the schema rejected: name and why. */
  invalidGateways: { name: string; error: string }[];
  nodes: NodeSnapshot[];
  heartbeats: LeaseView[];
  pickupLeader?: LeaseView;
  pods: PodView[];
  ravenConfig?: Record<string, string>;
  /** The PSK Secret, and the one-way fingerprint of its key (the value itself is never kept). */
  psk: { secret: 'present' | 'missing' | 'forbidden'; hasKey: boolean; fingerprint?: string };
  certificates: IssuedCertificate[];
  /** False when these credentials may not list CSRs (certificate checks are then skipped, and said so). */
  certificatesReadable: boolean;
}

/** A Node as `ravenctl` shows and diagnoses it: every label and annotation (the components cache `NodeView`). */
export interface NodeSnapshot {
  name: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  internalIP?: string;
  externalIP?: string;
  ready: 'True' | 'False' | 'Unknown';
  /** spec.podCIDRs (or spec.podCIDR); undefined where the snapshot was not read from the API. */
  podCIDRs?: string[];
}

export interface LeaseView {
  namespace: string;
  name: string;
  component?: string;
  holder?: string;
  durationSeconds?: number;
  /** spec.renewTime, written by the holder's clock. */
  renewTime?: number;
  /** When the apiserver recorded the holder's last write (managedFields time, its clock, second precision). */
  serverWriteTime?: number;
}

export interface PodView {
  name: string;
  namespace: string;
  component: string;
  nodeName?: string;
  phase?: string;
  images: string[];
  versionLabel?: string;
}

/** A certificate a Raven proxy process obtained through the CSR API (proxy-server serving, proxy-client client). */
export interface IssuedCertificate {
  csr: string;
  component: 'proxy-server' | 'proxy-client';
  nodeName: string;
  notBefore?: number;
  notAfter?: number;
  /** Set when the CSR was denied or failed. */
  refused?: string;
}

export const RAVEN_PART_OF = 'app.kubernetes.io/part-of=raven';
export const PICKUP_LEADER_LEASE = 'raven-gateway-pickup';
export const CSR_PREFIX = { 'proxy-server': 'raven-proxy-server-', 'proxy-client': 'raven-proxy-client-' } as const;

const time = (s: string | undefined | null) => (s ? Date.parse(s) : undefined);

const nodeSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), labels: z.record(z.string(), z.string()).optional(), annotations: z.record(z.string(), z.string()).optional() }),
  spec: z.looseObject({ podCIDR: z.string().optional(), podCIDRs: z.array(z.string()).optional() }).optional(),
  status: z.looseObject({
    addresses: z.array(z.looseObject({ type: z.string(), address: z.string() })).optional(),
    conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).optional(),
  }).optional(),
});

export function toNodeSnapshot(raw: unknown): NodeSnapshot {
  const n = nodeSchema.parse(raw);
  const address = (type: string) => n.status?.addresses?.find((a) => a.type === type)?.address;
  const ready = n.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return {
    name: n.metadata.name, labels: n.metadata.labels ?? {}, annotations: n.metadata.annotations ?? {},
    internalIP: address('InternalIP'), externalIP: address('ExternalIP'),
    ready: ready === 'True' || ready === 'False' ? ready : 'Unknown',
    podCIDRs: n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []),
  };
}

const leaseSchema = z.looseObject({
  metadata: z.looseObject({
    name: z.string(), namespace: z.string(), labels: z.record(z.string(), z.string()).optional(),
    managedFields: z.array(z.looseObject({ manager: z.string().optional(), time: z.string().optional(), fieldsV1: z.unknown().optional() })).optional(),
  }),
  spec: z.looseObject({
    holderIdentity: z.string().nullish(), leaseDurationSeconds: z.number().nullish(), renewTime: z.string().nullish(),
  }).optional(),
});

export function toLeaseView(raw: unknown): LeaseView {
  const l = leaseSchema.parse(raw);
  // The entry that owns spec.renewTime is the holder's last write; its time is the apiserver's clock.
  const owner = l.metadata.managedFields?.find((f) => JSON.stringify(f.fieldsV1 ?? {}).includes('"f:renewTime"'));
  return {
    namespace: l.metadata.namespace, name: l.metadata.name, component: l.metadata.labels?.[HEARTBEAT.label],
    holder: l.spec?.holderIdentity ?? undefined, durationSeconds: l.spec?.leaseDurationSeconds ?? undefined,
    renewTime: time(l.spec?.renewTime), serverWriteTime: time(owner?.time),
  };
}

const podSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), namespace: z.string(), labels: z.record(z.string(), z.string()).optional() }),
  spec: z.looseObject({ nodeName: z.string().optional(), containers: z.array(z.looseObject({ image: z.string().optional() })).optional() }).optional(),
  status: z.looseObject({ phase: z.string().optional() }).optional(),
});

export function toPodView(raw: unknown): PodView {
  const p = podSchema.parse(raw);
  const labels = p.metadata.labels ?? {};
  return {
    name: p.metadata.name, namespace: p.metadata.namespace,
    component: labels['app.kubernetes.io/component'] ?? labels['app.kubernetes.io/name'] ?? p.metadata.name,
    nodeName: p.spec?.nodeName, phase: p.status?.phase,
    images: (p.spec?.containers ?? []).map((c) => c.image ?? '').filter(Boolean),
    versionLabel: labels['app.kubernetes.io/version'],
  };
}

const csrSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string() }),
  status: z.looseObject({
    certificate: z.string().optional(),
    conditions: z.array(z.looseObject({ type: z.string(), message: z.string().optional(), reason: z.string().optional() })).optional(),
  }).optional(),
});

/**
 * The CSR a proxy process made, with the validity of what was issued. `readValidity` decodes the PEM (injected so
 * this stays pure and the X.509 parsing lives in one place).
 */
export function toIssuedCertificate(raw: unknown, nodeNames: readonly string[], readValidity: (pem: string) => { notBefore: number; notAfter: number }): IssuedCertificate | undefined {
  const c = csrSchema.parse(raw);
  const name = c.metadata.name;
  for (const component of ['proxy-server', 'proxy-client'] as const) {
    const prefix = CSR_PREFIX[component];
    if (!name.startsWith(prefix)) continue;
    // CSR names are `<prefix><node>-<suffix>`; the longest node name that fits wins (node names may contain dashes).
    const rest = name.slice(prefix.length);
    const nodeName = [...nodeNames].sort((a, b) => b.length - a.length).find((n) => rest === n || rest.startsWith(`${n}-`)) ?? rest.replace(/-[^-]*$/, '');
    const refusedBy = c.status?.conditions?.find((k) => k.type === 'Denied' || k.type === 'Failed');
    if (refusedBy) return { csr: name, component, nodeName, refused: `${refusedBy.type}: ${refusedBy.message ?? refusedBy.reason ?? ''}`.trim() };
    if (!c.status?.certificate) return undefined;
    try {
      return { csr: name, component, nodeName, ...readValidity(Buffer.from(c.status.certificate, 'base64').toString('utf8')) };
    } catch {
      return { csr: name, component, nodeName, refused: 'issued certificate does not parse' };
    }
  }
  return undefined;
}

async function getOrUndefined<T>(load: () => Promise<T>): Promise<T | undefined> {
  try {
    return await load();
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

export interface ReadOptions {
  namespace?: string;
  readValidity: (pem: string) => { notBefore: number; notAfter: number };
  now?: () => number;
}

/** Reads the snapshot with plain GETs (no watches): a CLI run is one consistent-enough look. */
export async function readSnapshot(kube: KubeClient, opts: ReadOptions): Promise<Snapshot> {
  const ns = opts.namespace ?? SYSTEM_NAMESPACE;
  const takenAt = (opts.now ?? Date.now)();
  const [gatewayList, nodeList, leaseList, leader, podList, cfg, secret, csrList] = await Promise.all([
    kube.listAll<unknown>(RESOURCES.gateways),
    kube.listAll<unknown>(RESOURCES.nodes),
    kube.listAll<unknown>(RESOURCES.leases, { namespace: HEARTBEAT.namespace, labelSelector: HEARTBEAT.label }),
    getOrUndefined(() => kube.get<unknown>(RESOURCES.leases, { namespace: ns, name: PICKUP_LEADER_LEASE })),
    kube.listAll<unknown>(RESOURCES.pods, { namespace: ns, labelSelector: RAVEN_PART_OF }),
    getOrUndefined(() => kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, { namespace: ns, name: CONFIGMAPS.ravenConfig })),
    readPskPresence(kube, ns),
    kube.listAll<unknown>(RESOURCES.csrs).catch((err: unknown) => {
      if ((err as { status?: number }).status === 403) return undefined;
      throw err;
    }),
  ]);
  const gateways: Gateway[] = [];
  const invalidGateways: Snapshot['invalidGateways'] = [];
  for (const raw of gatewayList.items) {
    const parsed = gatewayV1beta1Schema.safeParse(raw);
    if (parsed.success) gateways.push(parsed.data);
    else invalidGateways.push({ name: String((raw as { metadata?: { name?: unknown } }).metadata?.name ?? '?'), error: z.prettifyError(parsed.error) });
  }
  const nodes = nodeList.items.map(toNodeSnapshot);
  const nodeNames = nodes.map((n) => n.name);
  return {
    takenAt, namespace: ns, gateways, invalidGateways, nodes,
    heartbeats: leaseList.items.map(toLeaseView),
    pickupLeader: leader ? toLeaseView(leader) : undefined,
    pods: podList.items.map(toPodView),
    ravenConfig: cfg ? (cfg.data ?? {}) : undefined,
    psk: secret,
    certificates: (csrList?.items ?? []).flatMap((raw) => toIssuedCertificate(raw, nodeNames, opts.readValidity) ?? []),
    certificatesReadable: csrList !== undefined,
  };
}

/** Whether the PSK Secret and its key exist, and the key's fingerprint. The value itself is never kept. */
async function readPskPresence(kube: KubeClient, ns: string): Promise<Snapshot['psk']> {
  try {
    const secret = await kube.get<{ data?: Record<string, string> }>(RESOURCES.secrets, { namespace: ns, name: PSK_SECRET.name });
    const data = secret.data?.[PSK_SECRET.key];
    return { secret: 'present', hasKey: !!data, ...(data ? { fingerprint: pskFingerprint(Buffer.from(data, 'base64').toString('utf8')) } : {}) };
  } catch (err) {
    if (isNotFound(err)) return { secret: 'missing', hasKey: false };
    if ((err as { status?: number }).status === 403) return { secret: 'forbidden', hasKey: false };
    throw err;
  }
}
