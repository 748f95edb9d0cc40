import { LABELS, activeEndpointsOfType, gatewayV1beta1Schema, type Gateway } from '@raven/api-types';
import { RESOURCES, type KubeClient } from '@raven/controller-kit';
import type { Command, CommandContext } from './cli.ts';
import { EXIT, UsageError } from './exit.ts';
import { seconds } from './flags.ts';
import { ProbeRun, type ProberReport } from './probe-run.ts';
import { chooseProbeSites, parseProberResults, proberScript, type ProbeSite } from './probes.ts';
import { safeText, serialize } from './render.ts';
import type { NodeSnapshot } from './snapshot.ts';
import { explainFailures, planChecks, renderVerify, verifyRows, type Explanation, type L7Outcome, type ProberOutcome, type VerifyRow } from './verify.ts';

export const EDGE_WORKER_LABEL = 'openyurt.io/is-edge-worker';
export const DEFAULT_PROBE_IMAGE = 'busybox';



export function imageFlag(value: unknown): string {
  if (value === undefined) return DEFAULT_PROBE_IMAGE;
  // An image reference: registry/path:tag or @digest; nothing that could be read as a flag or carry whitespace.
  if (typeof value !== 'string' || !/^[a-z0-9][a-z0-9._/:@-]{0,254}$/i.test(value)) throw new UsageError(`--image must be an image reference; got "${String(value)}"`);
  return value;
}

interface VerifyRound {
  title: string;
  rows: VerifyRow[];
  explanations: Explanation[];
}

export interface VerifyReport {
  healthy: boolean;
  namespace: string;
  sites: ProbeSite[];
  rounds: VerifyRound[];
  failover?: { gateway: string; from: string; to?: string; electedAfterSeconds?: number; error?: string };
}

/** Edge nodes that the apiserver must reach by name: labelled edge workers, or (no labels) the probe sites. */
function edgeNodes(nodes: readonly NodeSnapshot[], sites: readonly ProbeSite[]): { node: string; gateway: string }[] {
  const labelled = nodes.filter((n) => n.labels[EDGE_WORKER_LABEL] === 'true' && n.ready === 'True');
  if (labelled.length > 0) return labelled.map((n) => ({ node: n.name, gateway: n.labels[LABELS.gateway] ?? '' }));
  return sites.map((s) => ({ node: s.node, gateway: s.gateway }));
}

async function l7Calls(kube: KubeClient, targets: readonly { node: string; gateway: string }[], probers: ReadonlyMap<string, ProberReport>, run: ProbeRun): Promise<L7Outcome[]> {
  return Promise.all(targets.map(async ({ node, gateway }): Promise<L7Outcome> => {
    try {
      const health = await kube.requestText('GET', `/api/v1/nodes/${encodeURIComponent(node)}/proxy/healthz`, { timeoutMs: 15_000 });
      if (health.trim() !== 'ok') return { node, gateway, ok: false, detail: `node proxy /healthz answered ${JSON.stringify(health.slice(0, 40))}` };
      const prober = probers.get(node)?.podName;
      if (!prober) return { node, gateway, ok: true, detail: 'node proxy /healthz' };
      // A probe's log names its node: proof that the call reached this node, not another one with the same IP.
      const log = await run.podLog(prober);
      const said = /raven-probe (\S+) done/.exec(log)?.[1];
      if (said !== node) return { node, gateway, ok: false, detail: `kubectl logs reached ${said ? safeText(said) : 'no probe'} instead of ${node}` };
      return { node, gateway, ok: true, detail: 'node proxy /healthz, kubectl logs' };
    } catch (err) {
      return { node, gateway, ok: false, detail: safeText((err as Error).message).slice(0, 200) };
    }
  }));
}

async function readGateways(kube: KubeClient): Promise<Gateway[]> {
  const list = await kube.list<unknown>(RESOURCES.gateways);
  return list.items.flatMap((raw) => {
    const parsed = gatewayV1beta1Schema.safeParse(raw);
    return parsed.success ? [parsed.data] : [];
  });
}

async function matrixRound(title: string, ctx: CommandContext, kube: KubeClient, run: ProbeRun, sites: ProbeSite[], nodes: readonly NodeSnapshot[], round: number): Promise<VerifyRound> {
  const progress = (line: string) => ctx.io.stderr(`${line}\n`);
  const gateways = await readGateways(kube);
  const { podIPs, failures } = round === 1 ? await run.startResponders(sites) : { podIPs: run.responderIPs, failures: new Map<string, string>() };
  const serviceIPs = round === 1 ? await run.createServices([...new Set(sites.map((s) => s.gateway))]) : run.serviceIPs;
  const plan = planChecks(sites, { podIPs, serviceIPs });
  const scripts = new Map(sites.filter((s) => podIPs.has(s.node)).map((s) => [s, proberScript(plan.get(s.node) ?? [])]));
  progress(`${title}: running ${[...plan.values()].reduce((n, c) => n + c.length, 0)} checks from ${scripts.size} probes`);
  const reports = await run.runProbers(scripts, round);
  const outcomes = new Map<string, ProberOutcome>();
  for (const site of sites) {
    const report = reports.get(site.node);
    const checks = plan.get(site.node) ?? [];
    if (failures.has(site.node)) outcomes.set(site.node, { failure: `its responder ${failures.get(site.node)}` });
    else if (report?.message !== undefined) outcomes.set(site.node, { results: parseProberResults(report.message, checks) });
    else outcomes.set(site.node, { failure: report?.failure ?? 'no prober' });
  }
  progress(`${title}: L7 calls through the apiserver`);
  const l7 = await l7Calls(kube, edgeNodes(nodes, sites), reports, run);
  const rows = verifyRows(sites, plan, outcomes, l7);
  return { title, rows, explanations: explainFailures(rows, sites, gateways) };
}

/**
 * --disruptive: the first Gateway with two tunnel endpoint candidates loses its active one from spec.endpoints (as an
 * operator draining it would); the new election is timed, the matrix runs again, and the original spec comes back.
 */
async function failover(ctx: CommandContext, kube: KubeClient, run: ProbeRun, sites: ProbeSite[], nodes: readonly NodeSnapshot[]): Promise<{ info: NonNullable<VerifyReport['failover']>; round?: VerifyRound }> {
  const gateways = await readGateways(kube);
  const gw = gateways.find((g) => (g.spec?.endpoints ?? []).filter((e) => e.type === 'tunnel').length >= 2 && activeEndpointsOfType(g, 'tunnel').length > 0);
  if (!gw) return { info: { gateway: '', from: '', error: 'no Gateway has two tunnel endpoint candidates and an active one' } };
  const active = activeEndpointsOfType(gw, 'tunnel')[0]!.nodeName;
  const original = gw.spec?.endpoints ?? [];
  const info: NonNullable<VerifyReport['failover']> = { gateway: gw.metadata.name, from: active };
  ctx.io.stderr(`failover: removing ${active} from ${gw.metadata.name}'s tunnel endpoints\n`);
  const restore = () => kube.patch(RESOURCES.gateways, { name: gw.metadata.name }, { spec: { endpoints: original } }, 'merge');
  const started = Date.now();
  run.onCleanup(restore);
  await kube.patch(RESOURCES.gateways, { name: gw.metadata.name }, { spec: { endpoints: original.filter((e) => !(e.type === 'tunnel' && e.nodeName === active)) } }, 'merge');
  try {
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const now = gatewayV1beta1Schema.parse(await kube.get(RESOURCES.gateways, { name: gw.metadata.name }));
      const next = activeEndpointsOfType(now, 'tunnel')[0]?.nodeName;
      if (next && next !== active) {
        info.to = next;
        info.electedAfterSeconds = (Date.now() - started) / 1000;
        break;
      }
      await new Promise((r) => setTimeout(r, 250));
    }
    if (!info.to) info.error = 'no other endpoint was elected within 60 s';
    const round = await matrixRound(`after failover of ${gw.metadata.name} (${active} -> ${info.to ?? 'none'})`, ctx, kube, run, sites, nodes, 2);
    return { info, round };
  } finally {
    await restore();
  }
}

export const verifyCommand: Command = {
  summary: 'Connectivity matrix with probe Pods on each node kind in every domain: pod to pod, ClusterIPs, large packets, L7 by node name (exit 1 on failures)',
  flags: { image: { type: 'string' }, timeout: { type: 'string' }, disruptive: { type: 'boolean' } },
  flagHelp: {
    image: `probe image with busybox's sh, ping, wget and httpd (default ${DEFAULT_PROBE_IMAGE})`,
    timeout: 'how long to wait for the probe Pods: seconds or a duration such as 2m (default 120)',
    disruptive: 'also fail over one Gateway (drops its active tunnel endpoint from spec.endpoints, then restores it)',
  },
  async run(ctx) {
    const image = imageFlag(ctx.values.image);
    const timeoutMs = seconds('timeout', ctx.values.timeout, 120) * 1000;
    const snapshot = await ctx.snapshot();
    const sites = chooseProbeSites(snapshot);
    if (sites.length === 0) {
      ctx.io.stderr('error: no Gateway has Ready nodes to probe (label nodes with raven.openyurt.io/gateway=<name>)\n');
      return EXIT.findings;
    }
    const kube = await ctx.kube();
    const run = await ProbeRun.start(kube, { image, timeoutMs, progress: (line) => ctx.io.stderr(`${line}\n`) });
    const report: VerifyReport = { healthy: false, namespace: run.namespace, sites, rounds: [] };
    try {
      report.rounds.push(await matrixRound('matrix', ctx, kube, run, sites, snapshot.nodes, 1));
      if (ctx.values.disruptive) {
        const { info, round } = await failover(ctx, kube, run, sites, snapshot.nodes);
        report.failover = info;
        if (round) report.rounds.push(round);
      }
    } finally {
      await run.cleanup();
    }
    report.healthy = report.rounds.every((r) => r.rows.every((row) => row.state === 'ok')) && !report.failover?.error;
    if (ctx.output !== 'table') ctx.io.stdout(serialize(report, ctx.output));
    else {
      const parts = report.rounds.map((r) => `== ${r.title}\n${renderVerify(r.rows, r.explanations)}`);
      if (report.failover) {
        const f = report.failover;
        parts.push(f.error ? `failover: ${f.error}\n` : `failover: ${f.gateway} moved from ${f.from} to ${f.to} in ${f.electedAfterSeconds?.toFixed(1)} s; its endpoints are restored\n`);
      }
      ctx.io.stdout(parts.join('\n'));
    }
    return report.healthy ? EXIT.healthy : EXIT.findings;
  },
};
