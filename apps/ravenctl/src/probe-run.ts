import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { RESOURCES, isAlreadyExists, isNotFound, type KubeClient } from '@raven/controller-kit';
import { z } from 'zod';
import { PROBE_LABEL, domainService, proberPod, responderPod, type ProbeSite } from './probes.ts';

/**
 * The probe Pods' lifetime: one namespace per run (`raven-probe-<id>`), deleted at the end, on failure, and on
 * SIGINT/SIGTERM, so an interrupted `verify` or `benchmark` leaves nothing behind but a namespace already terminating.
 */

const podSchema = z.looseObject({
  metadata: z.looseObject({ name: z.string(), labels: z.record(z.string(), z.string()).optional() }),
  spec: z.looseObject({ nodeName: z.string().optional() }).optional(),
  status: z.looseObject({
    phase: z.string().optional(),
    podIP: z.string().optional(),
    reason: z.string().optional(),
    message: z.string().optional(),
    conditions: z.array(z.looseObject({ type: z.string(), status: z.string(), reason: z.string().optional(), message: z.string().optional() })).optional(),
    containerStatuses: z.array(z.looseObject({
      state: z.looseObject({
        waiting: z.looseObject({ reason: z.string().optional(), message: z.string().optional() }).optional(),
        terminated: z.looseObject({ exitCode: z.number().optional(), reason: z.string().optional(), message: z.string().optional() }).optional(),
      }).optional(),
    })).optional(),
  }).optional(),
});
type PodObject = z.infer<typeof podSchema>;
const serviceSchema = z.looseObject({ spec: z.looseObject({ clusterIP: z.string().optional() }) });

/** What a Pod waits on, or why it is stuck (an image it cannot pull, a refusal), from its status. */
export function podProblem(pod: PodObject): string | undefined {
  const waiting = pod.status?.containerStatuses?.[0]?.state?.waiting;
  if (waiting?.reason && waiting.reason !== 'ContainerCreating' && waiting.reason !== 'PodInitializing') return `${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`;
  if (pod.status?.phase === 'Failed') return `${pod.status.reason ?? 'Failed'}${pod.status.message ? `: ${pod.status.message}` : ''}`;
  return undefined;
}

export interface ProbeRunOptions {
  image: string;
  timeoutMs: number;
  progress: (line: string) => void;
}

export interface ProberReport {
  message?: string;
  failure?: string;
  podName?: string;
}

export class ProbeRun {
  readonly namespace: string;
  readonly runId = randomBytes(3).toString('hex');
  private cleaned?: Promise<void>;
  private readonly cleanups: (() => Promise<unknown>)[] = [];
  /** Set by startResponders and createServices. */
  responderIPs = new Map<string, string>();
  serviceIPs = new Map<string, string>();
  private readonly onSignal = (signal: NodeJS.Signals) => {
    this.opts.progress(`${signal}: removing the probe namespace ${this.namespace}`);
    void this.cleanup().finally(() => process.exit(130));
  };

  private constructor(private readonly kube: KubeClient, private readonly opts: ProbeRunOptions) {
    this.namespace = `raven-probe-${this.runId}`;
  }

  static async start(kube: KubeClient, opts: ProbeRunOptions): Promise<ProbeRun> {
    const run = new ProbeRun(kube, opts);
    process.once('SIGINT', run.onSignal);
    process.once('SIGTERM', run.onSignal);
    try {
      await kube.create(RESOURCES.namespaces, {
        apiVersion: 'v1', kind: 'Namespace',
        // Probes ping (NET_RAW, root): baseline allows that, whatever the cluster's default level.
        metadata: { name: run.namespace, labels: { [PROBE_LABEL]: run.runId, 'pod-security.kubernetes.io/enforce': 'baseline' } },
      });
      // Pods need their ServiceAccount; do not wait for the controller manager to create it.
      await kube.create(RESOURCES.serviceAccounts, { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: run.namespace } }).catch((err: unknown) => {
        if (!isAlreadyExists(err)) throw err;
      });
    } catch (err) {
      await run.cleanup();
      throw err;
    }
    opts.progress(`probe namespace ${run.namespace}, image ${opts.image}`);
    return run;
  }

  private get manifestOptions() {
    return { namespace: this.namespace, image: this.opts.image, runId: this.runId };
  }

  /** Starts a responder on every site and waits for each to be Ready; returns Pod IPs, and why the others are not. */
  async startResponders(sites: readonly ProbeSite[]): Promise<{ podIPs: Map<string, string>; failures: Map<string, string> }> {
    const names = new Map<string, string>();
    for (const site of sites) {
      const pod = responderPod(site, this.manifestOptions) as { metadata: { name: string } };
      await this.kube.create(RESOURCES.pods, pod as never);
      names.set(pod.metadata.name, site.node);
    }
    const podIPs = new Map<string, string>();
    const failures = new Map<string, string>();
    await this.waitPods([...names.keys()], (pod) => {
      const node = names.get(pod.metadata.name)!;
      const problem = podProblem(pod);
      if (problem) failures.set(node, problem);
      const ready = pod.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True');
      if (ready && pod.status?.podIP) podIPs.set(node, pod.status.podIP);
      return (ready && pod.status?.podIP !== undefined) || problem !== undefined;
    }, (name) => failures.set(names.get(name)!, 'not Ready before the timeout'));
    this.opts.progress(`${podIPs.size} of ${sites.length} responders Ready`);
    this.responderIPs = podIPs;
    return { podIPs, failures };
  }

  /** A ClusterIP Service per Gateway over its responders. */
  async createServices(gateways: readonly string[]): Promise<Map<string, string>> {
    const ips = new Map<string, string>();
    for (const gateway of gateways) {
      const created = serviceSchema.parse(await this.kube.create(RESOURCES.services, domainService(gateway, this.manifestOptions) as never));
      if (created.spec.clusterIP && created.spec.clusterIP !== 'None') ips.set(gateway, created.spec.clusterIP);
    }
    this.serviceIPs = ips;
    return ips;
  }

  /** Runs one prober per site with its script and waits for all to end; their termination messages are the results. */
  async runProbers(scripts: ReadonlyMap<ProbeSite, string>, round: number): Promise<Map<string, ProberReport>> {
    const names = new Map<string, string>();
    for (const [site, script] of scripts) {
      const pod = proberPod(site, script, { ...this.manifestOptions, round }) as { metadata: { name: string } };
      await this.kube.create(RESOURCES.pods, pod as never);
      names.set(pod.metadata.name, site.node);
    }
    const reports = new Map<string, ProberReport>();
    await this.waitPods([...names.keys()], (pod) => {
      const node = names.get(pod.metadata.name)!;
      const terminated = pod.status?.containerStatuses?.[0]?.state?.terminated;
      if (terminated) {
        reports.set(node, { message: terminated.message ?? '', podName: pod.metadata.name });
        return true;
      }
      const problem = podProblem(pod);
      if (problem) reports.set(node, { failure: problem, podName: pod.metadata.name });
      return problem !== undefined;
    }, (name) => reports.set(names.get(name)!, { failure: 'did not finish before the timeout', podName: name }));
    return reports;
  }

  /** A Pod's log through the apiserver (and so, for an edge node, through the L7 proxy). */
  podLog(name: string): Promise<string> {
    return this.kube.requestText('GET', `/api/v1/namespaces/${this.namespace}/pods/${encodeURIComponent(name)}/log`, { timeoutMs: 15_000 });
  }

  private async waitPods(names: readonly string[], done: (pod: PodObject) => boolean, timedOut: (name: string) => void): Promise<void> {
    const pending = new Set(names);
    const deadline = Date.now() + this.opts.timeoutMs;
    while (pending.size > 0 && Date.now() < deadline) {
      const list = await this.kube.list<unknown>(RESOURCES.pods, { namespace: this.namespace, labelSelector: `${PROBE_LABEL}-run=${this.runId}` });
      for (const raw of list.items) {
        const pod = podSchema.parse(raw);
        if (pending.has(pod.metadata.name) && done(pod)) pending.delete(pod.metadata.name);
      }
      if (pending.size > 0) await sleep(500);
    }
    for (const name of pending) timedOut(name);
  }

  /** Something to undo at cleanup, interrupted or not (e.g. a Gateway's endpoints changed by --disruptive). */
  onCleanup(undo: () => Promise<unknown>): void {
    this.cleanups.push(undo);
  }

  /** Undoes what was registered, deletes the namespace (and with it every probe); idempotent, safe from a signal handler. */
  cleanup(): Promise<void> {
    this.cleaned ??= (async () => {
      process.off('SIGINT', this.onSignal);
      process.off('SIGTERM', this.onSignal);
      for (const undo of this.cleanups.reverse()) {
        await undo().catch((err: unknown) => this.opts.progress(`cleanup step failed: ${(err as Error).message}`));
      }
      try {
        await this.kube.delete(RESOURCES.namespaces, { name: this.namespace }, { propagationPolicy: 'Background' });
      } catch (err) {
        if (!isNotFound(err)) this.opts.progress(`could not delete the probe namespace ${this.namespace}: ${(err as Error).message}; delete it by hand`);
      }
    })();
    return this.cleaned;
  }
}
