import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from './errors.ts';

declare const __RAVEN_VERSION__: string | undefined;

/** The release this build belongs to: stamped into bundles by scripts/bundle.mjs, "dev" when run from source. */
export const BUILD_VERSION: string = typeof __RAVEN_VERSION__ === 'string' ? __RAVEN_VERSION__ : 'dev';

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
 * Parses `--flag=value` style arguments with node:util, prints `--help` or `--version` and exits. Unknown flags and
 * positional arguments other than the program's `commands` are errors: `--leader-elect false` would otherwise
 * silently mean true with a stray "false".
 */
export function parseFlags<F extends Record<string, FlagSpec>>(
  program: string,
  summary: string,
  flags: F,
  argv = process.argv.slice(2),
  commands: readonly string[] = [],
): { values: FlagValues<F>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig['options']> = { help: { type: 'boolean', short: 'h' }, version: { type: 'boolean' } };
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
    process.stdout.write(helpText(program, summary, flags, commands));
    process.exit(0);
  }
  if (parsed.values.version) {
    process.stdout.write(`${program} ${BUILD_VERSION} (node ${process.version})\n`);
    process.exit(0);
  }
  checkPositionals(program, flags, args, parsed.positionals, commands);
  delete (parsed.values as Record<string, unknown>).version;
  return { values: { ...parsed.values, ...booleanOverrides } as FlagValues<F>, positionals: parsed.positionals };
}

function checkPositionals(program: string, flags: Record<string, FlagSpec>, args: readonly string[], positionals: readonly string[], commands: readonly string[]): void {
  if (positionals.length === 0 || (positionals.length === 1 && commands.includes(positionals[0]!))) return;
  const stray = positionals.find((p, i) => i > 0 || !commands.includes(p)) ?? positionals[0]!;
  const index = args.indexOf(stray);
  const before = index > 0 ? /^--([^=]+)$/.exec(args[index - 1]!)?.[1] : undefined;
  if (before && flags[before]?.type === 'boolean') {
    throw new ConfigError(`${program}: stray argument "${stray}" after --${before}: boolean flags take the form --${before}=${stray}`);
  }
  const expected = commands.length > 0 ? `one of the commands ${commands.join(', ')}` : 'no positional arguments';
  throw new ConfigError(`${program}: unexpected argument "${stray}"; it takes ${expected} (see --help)`);
}

export function helpText(program: string, summary: string, flags: Record<string, FlagSpec>, commands: readonly string[] = []): string {
  const rows = Object.entries(flags).map(([name, spec]) => {
    const arg = spec.type === 'string' ? `--${name}=VALUE` : `--${name}`;
    const def = spec.default !== undefined && spec.default !== '' ? ` (default ${JSON.stringify(spec.default)})` : '';
    return `  ${arg.padEnd(34)} ${spec.description}${def}`;
  });
  const usage = commands.length > 0 ? `${program} [${commands.join('|')}] [flags]` : `${program} [flags]`;
  return `Usage: ${usage}\n\n${summary}\n\nFlags:\n${rows.join('\n')}\n  ${'--version'.padEnd(34)} Print the version and exit\n  ${'--help'.padEnd(34)} Show this help\n`;
}

export function intFlag(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(`--${name} must be a non-negative integer, got "${value}"`);
  return n;
}

const DURATION_UNITS_MS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Go's time.ParseDuration form without a sign (`1m30s`, `1.5h`, `500ms`, `0`), in milliseconds. */
export function parseDuration(text: string): number | undefined {
  if (text === '0') return 0;
  if (!/^(?:(?:\d+(?:\.\d*)?|\.\d+)(?:ns|us|µs|μs|ms|s|m|h))+$/.test(text)) return undefined;
  let total = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)/g)) total += Number(m[1]) * DURATION_UNITS_MS[m[2]!]!;
  return Number.isFinite(total) ? total : undefined;
}

export function durationFlag(name: string, value: string | undefined, fallbackMs: number): number {
  if (value === undefined || value === '') return fallbackMs;
  const ms = parseDuration(value);
  if (ms === undefined) throw new ConfigError(`--${name} must be a duration such as 500ms, 15s, 1m30s; got "${value.slice(0, 64)}"`);
  return ms;
}
