import { AGENT_DIAGNOSE_PATH, PORTS, agentDiagnoseSchema, type AgentDiagnose } from '@raven/api-types';
import { ApiError, RESOURCES, isNotFound, type KubeClient, type ResourceType } from '@raven/controller-kit';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * What `diagnose` reads beyond the snapshot: the node's surroundings (kube-proxy mode, the CNI's DaemonSets) and each tunnel-agent's own report, fetched through the apiserver's pod proxy. Read once, checked purely.
 */
export interface Environment {
  /** kube-system/kube-proxy's config.conf: absent when there is no such ConfigMap (flags, or no kube-proxy). */
  kubeProxy: { configMap: boolean; mode?: string };
  daemonSets: DaemonSetView[];
  agents: AgentProbe[];
  /** What these credentials may not read (so a "none found" is not mistaken for "none there"). */
  forbidden: string[];
}

export interface DaemonSetView {
  namespace: string;
  name: string;
  /** Every container's args, for the tunnel-agent's --vpn-driver. */
  args: string[];
}

/** One tunnel-agent Pod and what its diagnose endpoint answered, or why it could not be asked. */
export interface AgentProbe {
  pod: string;
  node?: string;
  report?: AgentDiagnose;
  unavailable?: string;
}

export const DAEMONSETS: ResourceType = { group: 'apps', version: 'v1', plural: 'daemonsets', namespaced: true };
/** Where CNIs install their DaemonSets. */
export const CNI_NAMESPACES = ['kube-system', 'kube-flannel', 'calico-system', 'cilium'] as const;
export const TUNNEL_AGENT_SELECTOR = 'app.kubernetes.io/component=tunnel-agent';
const AGENT_TIMEOUT_MS = 5_000;
const AGENT_CONCURRENCY = 8;

const kubeProxyConfigSchema = z.looseObject({ mode: z.string().nullish() });

/** kube-proxy's mode from its KubeProxyConfiguration text ('' is its default, iptables on Linux). */
export function kubeProxyMode(configConf: string | undefined): string | undefined {
  if (configConf === undefined) return undefined;
  try {
    const parsed = kubeProxyConfigSchema.safeParse(parseYaml(configConf) ?? {});
    return parsed.success ? (parsed.data.mode ?? '') : undefined;
  } catch {
    return undefined;
  }
}

const daemonSetSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), namespace: z.string() }),
  spec: z.looseObject({
    template: z.looseObject({ spec: z.looseObject({ containers: z.array(z.looseObject({ args: z.array(z.string()).optional() })).optional() }).optional() }).optional(),
  }).optional(),
});

const agentPodSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string() }),
  spec: z.looseObject({
    nodeName: z.string().optional(),
    containers: z.array(z.looseObject({ ports: z.array(z.looseObject({ name: z.string().optional(), containerPort: z.number() })).optional() })).optional(),
  }).optional(),
  status: z.looseObject({ phase: z.string().optional(), podIP: z.string().optional() }).optional(),
});

/** The pod-proxy path of a tunnel-agent's diagnose endpoint. */
export function agentProxyPath(namespace: string, pod: string, port: number): string {
  return `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/${encodeURIComponent(pod)}:${port}/proxy${AGENT_DIAGNOSE_PATH}`;
}

/** Why an agent could not be asked, in one clause. */
export function unavailableReason(err: unknown): string {
  if (err instanceof ApiError) {
    if (err.status === 403) return 'forbidden: these credentials may not use pods/proxy';
    if (err.status === 404) return `no ${AGENT_DIAGNOSE_PATH} there (a tunnel-agent older than this ravenctl?)`;
    return `the apiserver's pod proxy answered ${err.status} ${err.reason}`;
  }
  return (err as Error).message;
}

/** Parses what an agent answered; a foreign or older answer is said so, never trusted. */
export function parseAgentAnswer(raw: unknown): { report: AgentDiagnose } | { unavailable: string } {
  const parsed = agentDiagnoseSchema.safeParse(raw);
  if (parsed.success) return { report: parsed.data };
  return { unavailable: `answered something that is not a tunnel-agent diagnose report (${parsed.error.issues.length} schema issue(s), first at ${parsed.error.issues[0]?.path.join('.') || 'the top'})` };
}

async function probeAgent(kube: KubeClient, namespace: string, raw: unknown): Promise<AgentProbe> {
  const pod = agentPodSchema.parse(raw);
  const base = { pod: pod.metadata.name, ...(pod.spec?.nodeName ? { node: pod.spec.nodeName } : {}) };
  if (pod.status?.phase !== 'Running' || !pod.status.podIP) return { ...base, unavailable: `Pod is ${pod.status?.phase ?? 'without status'}${pod.status?.podIP ? '' : ', without an IP'}` };
  const port = pod.spec?.containers?.flatMap((c) => c.ports ?? []).find((p) => p.name === 'health')?.containerPort ?? PORTS.health;
  try {
    const answer = await kube.request<unknown>('GET', agentProxyPath(namespace, pod.metadata.name, port), { timeoutMs: AGENT_TIMEOUT_MS });
    return { ...base, ...parseAgentAnswer(answer) };
  } catch (err) {
    return { ...base, unavailable: unavailableReason(err) };
  }
}

async function mapLimited<T, R>(items: readonly T[], limit: number, f: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await f(items[i]!);
    }
  }));
  return out;
}

export async function readEnvironment(kube: KubeClient, opts: { namespace: string; agents: boolean }): Promise<Environment> {
  const forbidden: string[] = [];
  const readable = <T>(what: string, load: Promise<T>, empty: T): Promise<T> => load.catch((err: unknown) => {
    if (isNotFound(err)) return empty;
    if ((err as { status?: number }).status === 403) {
      forbidden.push(what);
      return empty;
    }
    throw err;
  });
  const [kubeProxyCm, daemonSets, agentPods] = await Promise.all([
    readable('configmap kube-system/kube-proxy', kube.get<{ data?: Record<string, string> } | undefined>(RESOURCES.configMaps, { namespace: 'kube-system', name: 'kube-proxy' }), undefined),
    Promise.all([...new Set([...CNI_NAMESPACES, opts.namespace])].map((namespace) => readable(`daemonsets in ${namespace}`, kube.list<unknown>(DAEMONSETS, { namespace }).then((l) => l.items), []))).then((lists) => lists.flat()),
    opts.agents ? readable(`pods in ${opts.namespace}`, kube.listAll<unknown>(RESOURCES.pods, { namespace: opts.namespace, labelSelector: TUNNEL_AGENT_SELECTOR }).then((l) => l.items), []) : Promise.resolve([]),
  ]);
  return {
    kubeProxy: { configMap: kubeProxyCm !== undefined, ...(kubeProxyCm ? { mode: kubeProxyMode(kubeProxyCm.data?.['config.conf']) } : {}) },
    daemonSets: daemonSets.map((raw) => {
      const d = daemonSetSchema.parse(raw);
      return { namespace: d.metadata.namespace, name: d.metadata.name, args: (d.spec?.template?.spec?.containers ?? []).flatMap((c) => c.args ?? []) };
    }),
    agents: await mapLimited(agentPods, AGENT_CONCURRENCY, (raw) => probeAgent(kube, opts.namespace, raw)),
    forbidden,
  };
}
