import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

/**
 * Reading rendered manifests: types and helpers with no dependency beyond the yaml package, so that doc-shim.ts (started
 * once per kubectl call) loads fast.
 */

export const GATEWAY_CRD_FILE = new URL('../../k8s/base/crds/gateways.raven.openyurt.io.yaml', import.meta.url).pathname;

export interface Metadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: Metadata;
  [field: string]: unknown;
}

export interface Probe { httpGet?: { path: string; port: string | number } }
export interface SecurityContext {
  privileged?: boolean;
  runAsNonRoot?: boolean;
  runAsUser?: number;
  allowPrivilegeEscalation?: boolean;
  readOnlyRootFilesystem?: boolean;
  procMount?: string;
  capabilities?: { add?: string[]; drop?: string[] };
}
export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: string;
  args?: string[];
  ports?: Array<{ name?: string; containerPort: number; protocol?: string }>;
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: SecurityContext;
}
export interface Volume {
  name: string;
  hostPath?: { path: string };
  secret?: { secretName: string; optional?: boolean };
  configMap?: { name: string; optional?: boolean };
}
export interface PodSpec {
  serviceAccountName?: string;
  hostNetwork?: boolean;
  hostUsers?: boolean;
  terminationGracePeriodSeconds?: number;
  securityContext?: SecurityContext;
  containers: Container[];
  volumes?: Volume[];
}
export interface Workload extends K8sObject {
  kind: 'Deployment' | 'DaemonSet';
  spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string> }; spec: PodSpec } };
}

export function parseManifests(text: string): K8sObject[] {
  return parseAllDocuments(text).map((d) => d.toJSON() as unknown).filter((doc): doc is K8sObject => {
    if (doc === null || doc === undefined) return false;
    const o = doc as Partial<K8sObject>;
    if (typeof o.kind !== 'string' || typeof o.apiVersion !== 'string' || typeof o.metadata?.name !== 'string') {
      throw new Error(`not a Kubernetes object: ${JSON.stringify(doc).slice(0, 200)}`);
    }
    return true;
  });
}

export function readManifests(path: string): K8sObject[] {
  return parseManifests(readFileSync(path, 'utf8'));
}

export const objectKey = (o: K8sObject): string => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

export function find<T extends K8sObject = K8sObject>(objects: readonly K8sObject[], kind: string, name: string): T | undefined {
  return objects.find((o) => o.kind === kind && o.metadata.name === name) as T | undefined;
}

export function workloads(objects: readonly K8sObject[]): Workload[] {
  return objects.filter((o): o is Workload => o.kind === 'Deployment' || o.kind === 'DaemonSet');
}

/** The app a workload runs (its component label), e.g. `gateway-pickup` or `proxy-dns`. */
export const componentOf = (o: K8sObject): string => o.metadata.labels?.['app.kubernetes.io/component'] ?? '';

/** `--flag=value` / `--flag` arguments as a map (the last one wins, as in the apps' flag parser). */
export function flagsOf(args: readonly string[] = []): Map<string, string> {
  const flags = new Map<string, string>();
  for (const arg of args) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(arg);
    if (!m) throw new Error(`not a --flag argument: ${arg}`);
    flags.set(m[1]!, m[2] ?? 'true');
  }
  return flags;
}
