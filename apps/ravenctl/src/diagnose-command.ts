import type { Command } from './cli.ts';
import type { KubeClient } from '@raven/controller-kit';
import { DEFAULT_DIAGNOSE_OPTIONS, diagnose, type DiagnoseOptions, type Finding } from './diagnose.ts';
import { readEnvironment, type Environment } from './environment.ts';
import { EXIT } from './exit.ts';
import { seconds } from './flags.ts';
import { checkAgents, checkEnvironment, type Note } from './node-checks.ts';
import { safeText, serialize } from './render.ts';
import type { Snapshot } from './snapshot.ts';

export interface DiagnoseReport {
  healthy: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
  /** Context that is no fault (kube-proxy mode, CNI, MTUs, ports to open, agents not reachable): exit code unaffected. */
  notes?: Note[];
}

export function report(findings: Finding[], notes: Note[] = []): DiagnoseReport {
  const errors = findings.filter((f) => f.severity === 'error').length;
  // Errors first, otherwise in the order the checks ran.
  const sorted = findings.map((f, i) => ({ f, i })).sort((a, b) => Number(a.f.severity !== 'error') - Number(b.f.severity !== 'error') || a.i - b.i).map(({ f }) => f);
  return { healthy: findings.length === 0, errors, warnings: findings.length - errors, findings: sorted, ...(notes.length > 0 ? { notes } : {}) };
}

export function renderNotes(notes: readonly Note[]): string {
  return notes.map((n) => `${'INFO'.padEnd(8)} ${safeText(n.topic)}  ${safeText(n.message)}${n.fix ? `\n${' '.repeat(8)} hint: ${safeText(n.fix)}` : ''}\n`).join('');
}

export function renderReport(r: DiagnoseReport): string {
  const notes = r.notes?.length ? `${renderNotes(r.notes)}\n` : '';
  if (r.healthy) return `${notes}No problems found.\n`;
  return notes + renderFindings(r);
}

function renderFindings(r: DiagnoseReport): string {
  const lines = r.findings.flatMap((f) => [
    `${f.severity.toUpperCase().padEnd(8)} ${safeText(f.check)}  ${safeText(f.object)}: ${safeText(f.message)}`,
    `${' '.repeat(8)} fix: ${safeText(f.fix)}`,
  ]);
  return `${lines.join('\n')}\n\n${r.errors} error(s), ${r.warnings} warning(s).\n`;
}

/** Every check: the snapshot's, then each agent's own view and the environment's hints (read through `kube`). */
export async function fullDiagnose(snapshot: Snapshot, kube: KubeClient, opts: DiagnoseOptions & { askAgents: boolean }): Promise<{ report: DiagnoseReport; env: Environment }> {
  const env = await readEnvironment(kube, { namespace: snapshot.namespace, agents: opts.askAgents });
  const agents = checkAgents(snapshot, env, opts.askAgents);
  const hints = checkEnvironment(snapshot, env);
  const findings = [...diagnose(snapshot, opts), ...agents.findings, ...hints.findings];
  return { report: report(findings, [...agents.notes, ...hints.notes]), env };
}

export const diagnoseCommand: Command = {
  summary: 'Checks for what breaks Raven, each finding with a one-line fix (exit 1 when there are findings)',
  flags: { 'max-clock-skew': { type: 'string' }, 'skip-agents': { type: 'boolean' } },
  flagHelp: {
    'max-clock-skew': `node clock skew to report, in seconds or as a duration such as 1m30s (default ${DEFAULT_DIAGNOSE_OPTIONS.maxClockSkewSeconds})`,
    'skip-agents': "do not ask each tunnel-agent for its own view (planned vs. actual kernel state, handshakes) through the apiserver's pod proxy",
  },
  async run(ctx) {
    const maxClockSkewSeconds = seconds('max-clock-skew', ctx.values['max-clock-skew'], DEFAULT_DIAGNOSE_OPTIONS.maxClockSkewSeconds, { allowZero: true });
    const { report: r } = await fullDiagnose(await ctx.snapshot(), await ctx.kube(), { ...DEFAULT_DIAGNOSE_OPTIONS, maxClockSkewSeconds, askAgents: ctx.values['skip-agents'] !== true });
    ctx.io.stdout(ctx.output === 'table' ? renderReport(r) : serialize(r, ctx.output));
    return r.healthy ? EXIT.healthy : EXIT.findings;
  },
};
