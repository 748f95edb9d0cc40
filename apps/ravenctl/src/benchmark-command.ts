import { benchmarkScript, parseBenchmark, renderBenchmark, type BenchmarkPlan } from './benchmark.ts';
import type { Command } from './cli.ts';
import { EXIT, UsageError } from './exit.ts';
import { ProbeRun } from './probe-run.ts';
import { chooseProbeSites, type ProbeSite } from './probes.ts';
import { serialize } from './render.ts';
import { seconds } from './flags.ts';
import { imageFlag } from './verify-command.ts';

function positiveInteger(name: string, value: unknown, fallback: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n <= 0 || n > max) throw new UsageError(`--${name} must be an integer in 1..${max}; got "${String(value)}"`);
  return n;
}

/** `--from`/`--to`: a node name, or a Gateway name (its non-gateway member if it has one, else its gateway). */
export function pickSite(sites: readonly ProbeSite[], wanted: string | undefined, other: ProbeSite | undefined, flag: string): ProbeSite {
  const prefer = (list: ProbeSite[]) => list.find((s) => s.role === 'member') ?? list[0];
  if (wanted !== undefined) {
    const site = sites.find((s) => s.node === wanted) ?? prefer(sites.filter((s) => s.gateway === wanted));
    if (!site) throw new UsageError(`--${flag} ${JSON.stringify(wanted)} is neither a Ready node of a Gateway nor a Gateway with Ready nodes`);
    return site;
  }
  const site = prefer(sites.filter((s) => !other || s.gateway !== other.gateway));
  if (!site) throw new UsageError('benchmark needs two Gateways with Ready nodes (or name them with --from and --to)');
  return site;
}

export const benchmarkCommand: Command = {
  summary: 'Throughput and latency between two domains, measured by Pods (busybox ping and HTTP)',
  flags: {
    from: { type: 'string' }, to: { type: 'string' }, size: { type: 'string' }, streams: { type: 'string' },
    pings: { type: 'string' }, image: { type: 'string' }, timeout: { type: 'string' },
  },
  flagHelp: {
    from: 'client node or Gateway (default: a non-gateway member of the first Gateway)',
    to: 'server node or Gateway (default: a non-gateway member of another Gateway)',
    size: 'MiB to transfer (default 256)',
    streams: 'parallel TCP streams (default 1)',
    pings: 'pings for the latency figures (default 20)',
    image: 'image with busybox\'s sh, ping, wget, httpd and dd (default busybox)',
    timeout: 'how long to wait for the Pods and the transfer: seconds or a duration such as 2m (default 120)',
  },
  async run(ctx) {
    const plan: Omit<BenchmarkPlan, 'address'> = {
      sizeMiB: positiveInteger('size', ctx.values.size, 256, 65_536),
      streams: positiveInteger('streams', ctx.values.streams, 1, 64),
      pings: positiveInteger('pings', ctx.values.pings, 20, 1_000),
      timeoutSeconds: Math.ceil(seconds('timeout', ctx.values.timeout, 120)),
    };
    const image = imageFlag(ctx.values.image);
    const snapshot = await ctx.snapshot();
    const sites = chooseProbeSites(snapshot);
    const from = pickSite(sites, ctx.values.from as string | undefined, undefined, 'from');
    const to = pickSite(sites.filter((s) => s.node !== from.node), ctx.values.to as string | undefined, from, 'to');
    const kube = await ctx.kube();
    const run = await ProbeRun.start(kube, { image, timeoutMs: plan.timeoutSeconds * 1000, progress: (line) => ctx.io.stderr(`${line}\n`) });
    try {
      // Data flows from --from to --to: the responder on `from` serves, the client on `to` downloads and times it.
      const { podIPs, failures } = await run.startResponders([from]);
      const address = podIPs.get(from.node);
      if (!address) {
        ctx.io.stderr(`error: the sending Pod on ${from.node} did not start: ${failures.get(from.node) ?? 'unknown'}\n`);
        return EXIT.findings;
      }
      ctx.io.stderr(`measuring ${from.node} -> ${to.node}: ${plan.pings} pings, ${plan.sizeMiB} MiB over ${plan.streams} stream(s)\n`);
      const reports = await run.runProbers(new Map([[to, benchmarkScript({ ...plan, address })]]), 1);
      const report = reports.get(to.node);
      if (report?.message === undefined) {
        ctx.io.stderr(`error: the receiving Pod on ${to.node} did not finish: ${report?.failure ?? 'unknown'}\n`);
        return EXIT.findings;
      }
      const result = parseBenchmark(report.message, { ...plan, address }, from, to);
      const relay = snapshot.gateways.find((g) => g.metadata.name === from.gateway)?.status?.connections?.find((c) => c.gateway === to.gateway)?.relayedVia;
      if (relay) result.relayedVia = relay;
      ctx.io.stdout(ctx.output === 'table' ? renderBenchmark(result) : serialize(result, ctx.output));
      return result.problem ? EXIT.findings : EXIT.healthy;
    } finally {
      await run.cleanup();
    }
  },
};
