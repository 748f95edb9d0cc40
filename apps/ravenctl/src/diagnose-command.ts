import type { Command } from './cli.ts';
import { DEFAULT_DIAGNOSE_OPTIONS, diagnose, type Finding } from './diagnose.ts';
import { EXIT, UsageError } from './exit.ts';
import { safeText, serialize } from './render.ts';

export interface DiagnoseReport {
  healthy: boolean;
  errors: number;
  warnings: number;
  findings: Finding[];
}

export function report(findings: Finding[]): DiagnoseReport {
  const errors = findings.filter((f) => f.severity === 'error').length;
  return { healthy: findings.length === 0, errors, warnings: findings.length - errors, findings };
}

export function renderReport(r: DiagnoseReport): string {
  if (r.healthy) return 'No problems found.\n';
  const lines = r.findings.flatMap((f) => [
    `${f.severity.toUpperCase().padEnd(8)} ${safeText(f.check)}  ${safeText(f.object)}: ${safeText(f.message)}`,
    `${' '.repeat(8)} fix: ${safeText(f.fix)}`,
  ]);
  return `${lines.join('\n')}\n\n${r.errors} error(s), ${r.warnings} warning(s).\n`;
}

function seconds(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new UsageError(`--${name} must be a non-negative number of seconds; got "${String(value)}"`);
  return n;
}

export const diagnoseCommand: Command = {
  summary: 'Checks for what breaks Raven, each finding with a one-line fix (exit 1 when there are findings)',
  flags: { 'max-clock-skew': { type: 'string' } },
  flagHelp: { 'max-clock-skew': `seconds of node clock skew to report (default ${DEFAULT_DIAGNOSE_OPTIONS.maxClockSkewSeconds})` },
  async run(ctx) {
    const maxClockSkewSeconds = seconds('max-clock-skew', ctx.values['max-clock-skew'], DEFAULT_DIAGNOSE_OPTIONS.maxClockSkewSeconds);
    const findings = diagnose(await ctx.snapshot(), { ...DEFAULT_DIAGNOSE_OPTIONS, maxClockSkewSeconds });
    const r = report(findings);
    ctx.io.stdout(ctx.output === 'table' ? renderReport(r) : serialize(r, ctx.output));
    return r.healthy ? EXIT.healthy : EXIT.findings;
  },
};
