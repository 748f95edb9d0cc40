import { AGENT_DIAGNOSE_PATH, PORTS, agentDiagnoseSchema, type AgentDiagnose } from '@raven/api-types';
import { ApiError, RESOURCES, isNotFound, type KubeClient, type ResourceType } from '@raven/controller-kit';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

/**
 * What `diagnose` reads beyond the snapshot: the node's surroundings (kube-proxy mode, the CNI's DaemonSets, node
 * podCIDRs) and each tunnel-agent's own report, fetched through the apiserver's pod proxy. Read once, checked purely.
 */
export interface Environment {
  /** kube-system/kube-proxy's config.conf: absent when there is no such ConfigMap (flags, or no kube-proxy). */
  kubeProxy: { configMap: boolean; mode?: string };
  daemonSets: DaemonSetView[];
  /** Nodes and their spec.podCIDRs. */
  podCIDRs: { node: string; cidrs: string[] }[];
  agents: AgentProbe[];
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

const nodeSchema = z.looseObject({ metadata: z.looseObject({ name: z.string() }), spec: z.looseObject({ podCIDR: z.string().optional(), podCIDRs: z.array(z.string()).optional() }).optional() });

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

const forbiddenIsEmpty = <T>(load: Promise<{ items: T[] }>): Promise<T[]> => load.then((l) => l.items, (err: unknown) => {
  if (isNotFound(err) || (err as { status?: number }).status === 403) return [];
  throw err;
});

export async function readEnvironment(kube: KubeClient, opts: { namespace: string; agents: boolean }): Promise<Environment> {
  const [kubeProxyCm, daemonSets, nodes, agentPods] = await Promise.all([
    kube.get<{ data?: Record<string, string> }>(RESOURCES.configMaps, { namespace: 'kube-system', name: 'kube-proxy' }).catch((err: unknown) => {
      if (isNotFound(err) || (err as { status?: number }).status === 403) return undefined;
      throw err;
    }),
    Promise.all([...new Set([...CNI_NAMESPACES, opts.namespace])].map((namespace) => forbiddenIsEmpty(kube.list<unknown>(DAEMONSETS, { namespace })))).then((lists) => lists.flat()),
    forbiddenIsEmpty(kube.listAll<unknown>(RESOURCES.nodes)),
    opts.agents ? forbiddenIsEmpty(kube.listAll<unknown>(RESOURCES.pods, { namespace: opts.namespace, labelSelector: TUNNEL_AGENT_SELECTOR })) : Promise.resolve([]),
  ]);
  return {
    kubeProxy: { configMap: kubeProxyCm !== undefined, ...(kubeProxyCm ? { mode: kubeProxyMode(kubeProxyCm.data?.['config.conf']) } : {}) },
    daemonSets: daemonSets.map((raw) => {
      const d = daemonSetSchema.parse(raw);
      return { namespace: d.metadata.namespace, name: d.metadata.name, args: (d.spec?.template?.spec?.containers ?? []).flatMap((c) => c.args ?? []) };
    }),
    podCIDRs: nodes.map((raw) => {
      const n = nodeSchema.parse(raw);
      return { node: n.metadata.name, cidrs: n.spec?.podCIDRs ?? (n.spec?.podCIDR ? [n.spec.podCIDR] : []) };
    }),
    agents: await mapLimited(agentPods, AGENT_CONCURRENCY, (raw) => probeAgent(kube, opts.namespace, raw)),
  };
}
