import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { SYSTEM_NAMESPACE } from '@raven/api-types';
import { ApiError, ConfigError, KubeClient, kubeconfigList } from '@raven/controller-kit';
import { viewCertificate } from '@raven/node-certs';
import { EXIT, UsageError } from './exit.ts';
import { gatherCommand } from './gather-command.ts';
import { VERSION } from './version.ts';
import { benchmarkCommand } from './benchmark-command.ts';
import { diagnoseCommand } from './diagnose-command.ts';
import { graphCommand } from './graph-command.ts';
import { serialize, type OutputFormat } from './render.ts';
import { buildShowView } from './show.ts';
import { renderShow } from './show-render.ts';
import { readSnapshot, type Snapshot } from './snapshot.ts';
import { verifyCommand } from './verify-command.ts';

export { VERSION };

export { EXIT, UsageError };

export interface Io {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Record<string, string | undefined>;
  /** Injected clock (tests). */
  now?: () => number;
}

type Values = Record<string, string | boolean | string[] | undefined>;

export interface CommandContext {
  values: Values;
  positionals: string[];
  output: OutputFormat;
  io: Io;
  /** The kubeconfig in use: one file, $KUBECONFIG's files merged, or undefined (in-cluster). */
  kubeconfig?: string | readonly string[];
  /** Connects lazily, so `--help` and usage errors never touch the network. */
  kube: () => Promise<KubeClient>;
  snapshot: () => Promise<Snapshot>;
}

export interface Command {
  summary: string;
  flags: NonNullable<ParseArgsConfig['options']>;
  flagHelp: Record<string, string>;
  run(ctx: CommandContext): Promise<number>;
}

const COMMON_OPTIONS = {
  kubeconfig: { type: 'string' },
  namespace: { type: 'string', short: 'n' },
  output: { type: 'string', short: 'o' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

const COMMON_HELP: Record<string, string> = {
  kubeconfig: 'kubeconfig path (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)',
  namespace: `namespace of Raven's system objects (default ${SYSTEM_NAMESPACE})`,
  output: 'table (default), json or yaml',
  version: "print ravenctl's version and exit",
};

const COMMANDS: Record<string, Command> = {
  show: {
    summary: 'Gateways and elected endpoints, nodes per domain, connections per peer, heartbeats, component versions',
    flags: {},
    flagHelp: {},
    async run(ctx) {
      const view = buildShowView(await ctx.snapshot());
      ctx.io.stdout(ctx.output === 'table' ? renderShow(view) : serialize(view, ctx.output));
      return EXIT.healthy;
    },
  },
  graph: graphCommand,
  diagnose: diagnoseCommand,
  gather: gatherCommand,
  verify: verifyCommand,
  benchmark: benchmarkCommand,
};

function programName(env: Io['env']): string {
  // kubectl runs plugins with their own path as argv[1]; `kubectl raven show` reads better than `kubectl-raven show`.
  return /kubectl-raven$/.test(env.RAVENCTL_ARGV0 ?? '') ? 'kubectl raven' : 'ravenctl';
}

function usage(env: Io['env']): string {
  const name = programName(env);
  const rows = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`);
  return `Usage: ${name} <command> [flags]\n\nInspect and troubleshoot Raven through the Kubernetes API.\n\nCommands:\n${rows.join('\n')}\n  ${'version'.padEnd(10)} Print the ravenctl version\n\nRun '${name} <command> --help' for a command's flags. Exit codes: 0 healthy, 1 findings, 2 usage error, 3 cannot reach or read the cluster.\n`;
}

function commandHelp(env: Io['env'], name: string, command: Command): string {
  const help = { ...command.flagHelp, ...COMMON_HELP };
  const options = { ...command.flags, ...COMMON_OPTIONS } as NonNullable<ParseArgsConfig['options']>;
  const rows = Object.entries(help).map(([flag, text]) => {
    const spec = options[flag]!;
    const arg = `${spec.short ? `-${spec.short}, ` : ''}--${flag}${spec.type === 'string' ? '=VALUE' : ''}`;
    return `  ${arg.padEnd(30)} ${text}`;
  });
  return `Usage: ${programName(env)} ${name} [flags]\n\n${command.summary}\n\nFlags:\n${rows.join('\n')}\n`;
}

/** As kubectl: the flag's one file, else $KUBECONFIG's list (merged), else ~/.kube/config when it exists. */
export function resolveKubeconfig(flag: string | undefined, env: Io['env']): string | string[] | undefined {
  if (flag) return flag;
  const list = kubeconfigList(env.KUBECONFIG);
  if (list.length > 0) return list;
  const home = join(env.HOME ?? homedir(), '.kube/config');
  return existsSync(home) ? home : undefined;
}

function outputFormat(value: unknown): OutputFormat {
  if (value === undefined || value === 'table' || value === 'wide') return 'table';
  if (value === 'json' || value === 'yaml') return value;
  throw new UsageError(`--output must be table, json or yaml; got "${String(value)}"`);
}

/** Runs one ravenctl invocation and returns its exit code; never exits the process itself. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let client: KubeClient | undefined;
  try {
    const [name, ...rest] = argv;
    if (!name || name === 'help' || name === '--help' || name === '-h') {
      io.stdout(usage(io.env));
      return name ? EXIT.healthy : EXIT.usage;
    }
    if (name === 'version' || name === '--version') {
      io.stdout(`ravenctl ${VERSION}\n`);
      return EXIT.healthy;
    }
    const command = COMMANDS[name];
    if (!command) throw new UsageError(`unknown command "${name}"`);
    let parsed;
    try {
      parsed = parseArgs({ args: [...rest], options: { ...command.flags, ...COMMON_OPTIONS }, allowPositionals: true, strict: true });
    } catch (err) {
      throw new UsageError((err as Error).message);
    }
    const values = parsed.values as Values;
    if (parsed.positionals.length > 0) throw new UsageError(`unexpected argument "${parsed.positionals[0]}"`);
    if (values.help) {
      io.stdout(commandHelp(io.env, name, command));
      return EXIT.healthy;
    }
    if (values.version) {
      io.stdout(`ravenctl ${VERSION}\n`);
      return EXIT.healthy;
    }
    const output = outputFormat(values.output);
    const namespace = typeof values.namespace === 'string' ? values.namespace : SYSTEM_NAMESPACE;
    const kubeconfig = resolveKubeconfig(values.kubeconfig as string | undefined, io.env);
    const kube = async () => {
      client ??= await KubeClient.load({ kubeconfig, userAgent: `ravenctl/${VERSION}` });
      return client;
    };
    let snap: Promise<Snapshot> | undefined;
    const snapshot = () => (snap ??= kube().then((k) => readSnapshot(k, {
      namespace, now: io.now,
      readValidity: (pem) => {
        const v = viewCertificate(pem);
        return { notBefore: v.notBefore.getTime(), notAfter: v.notAfter.getTime() };
      },
    })));
    return await command.run({ values, positionals: parsed.positionals, output, io, kubeconfig, kube, snapshot });
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`error: ${err.message}\nRun '${programName(io.env)} --help' for usage.\n`);
      return EXIT.usage;
    }
    if (err instanceof ConfigError || err instanceof ApiError || isNetworkError(err)) {
      io.stderr(`error: cannot read the cluster: ${(err as Error).message}\n`);
      return EXIT.unreachable;
    }
    io.stderr(`error: ${(err as Error).stack ?? String(err)}\n`);
    return EXIT.internal;
  } finally {
    client?.close();
  }
}

function isNetworkError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && /^(E[A-Z_]+|ERR_TLS_.*|UNABLE_TO_.*|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_.*)$/.test(code);
}
