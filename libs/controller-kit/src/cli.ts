import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.ts';

export interface FlagSpec {
  type: 'string' | 'boolean';
  description: string;
  default?: string | boolean;
  multiple?: boolean;
}

export type FlagValues<F extends Record<string, FlagSpec>> = {
  [K in keyof F]: F[K]['type'] extends 'boolean' ? boolean : F[K]['multiple'] extends true ? string[] : string | undefined;
};

/** Flags every app that talks to the API shares. */
export const COMMON_FLAGS = {
  kubeconfig: { type: 'string', description: 'Path to a kubeconfig; falls back to $KUBECONFIG, then the in-cluster service account' },
  'log-level': { type: 'string', description: 'trace|debug|info|warn|error', default: 'info' },
} as const satisfies Record<string, FlagSpec>;

/**
 * Parses `--flag=value` style arguments with node:util, prints `--help` and exits, and rejects unknown flags.
 * Returns the values plus positional arguments (sub-commands).
 */
export function parseFlags<F extends Record<string, FlagSpec>>(
  program: string,
  summary: string,
  flags: F,
  argv = process.argv.slice(2),
): { values: FlagValues<F>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, spec] of Object.entries(flags)) {
    options[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}), ...(spec.default !== undefined ? { default: spec.default } : {}) } as never;
  }
  // Kubernetes-style `--flag=false` for booleans, which node:util does not take.
  const booleanOverrides: Record<string, boolean> = {};
  const args = argv.filter((arg) => {
    const m = /^--([^=]+)=(true|false)$/.exec(arg);
    if (m && flags[m[1]!]?.type === 'boolean') {
      booleanOverrides[m[1]!] = m[2] === 'true';
      return false;
    }
    return true;
  });
  let parsed;
  try {
    parsed = parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new ConfigError(`${program}: ${(err as Error).message} (see --help)`);
  }
  if (parsed.values.help) {
    process.stdout.write(helpText(program, summary, flags));
    process.exit(0);
  }
  return { values: { ...parsed.values, ...booleanOverrides } as FlagValues<F>, positionals: parsed.positionals };
}

export function helpText(program: string, summary: string, flags: Record<string, FlagSpec>): string {
  const rows = Object.entries(flags).map(([name, spec]) => {
    const arg = spec.type === 'string' ? `--${name}=VALUE` : `--${name}`;
    const def = spec.default !== undefined && spec.default !== '' ? ` (default ${JSON.stringify(spec.default)})` : '';
    return `  ${arg.padEnd(34)} ${spec.description}${def}`;
  });
  return `Usage: ${program} [flags]\n\n${summary}\n\nFlags:\n${rows.join('\n')}\n  ${'--help'.padEnd(34)} Show this help\n`;
}

export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

export function durationFlag(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined || value === '') return fallbackMs;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value);
  if (!m) throw new ConfigError(`--${name} must be a duration such as 500ms, 15s, 2m; got "${value}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
  return Number(m[1]) * unit;
}
