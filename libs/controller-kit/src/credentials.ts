import { existsSync, readFileSync } from 'node:fs';
import type { AgentOptions, RequestOptions } from 'node:https';
import { delimiter, dirname, isAbsolute, resolve } from 'node:path';
import { parse, stringify } from 'yaml';
import { z } from 'zod';
import { ConfigError } from './errors.ts';

export type TlsOptions = Pick<AgentOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized' | 'servername'>;

/** Where the API is and how to authenticate to it; `headers()` is re-read periodically (rotated tokens). */
export interface Credentials {
  server: URL;
  tls: TlsOptions;
  /** The cluster CA (PEM) when the configuration names one. */
  caPem?: string;
  headers(): Promise<Record<string, string>>;
}

const SA_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';

const clusterSchema = z.looseObject({
  server: z.string(), 'certificate-authority-data': z.string().optional(), 'certificate-authority': z.string().optional(),
  'insecure-skip-tls-verify': z.boolean().optional(), 'tls-server-name': z.string().optional(), 'proxy-url': z.string().optional(),
});
const kubeconfigFileSchema = z.looseObject({
  'current-context': z.string().optional(),
  clusters: z.array(z.looseObject({ name: z.string(), cluster: clusterSchema })).nullish(),
  users: z.array(z.looseObject({ name: z.string(), user: z.looseObject({}).nullish() })).nullish(),
  contexts: z.array(z.looseObject({ name: z.string(), context: z.looseObject({ cluster: z.string(), user: z.string().optional() }) })).nullish(),
});
type KubeconfigFile = z.infer<typeof kubeconfigFileSchema>;
interface Kubeconfig {
  source: string;
  'current-context'?: string;
  clusters: Array<{ name: string; cluster: z.infer<typeof clusterSchema> }>;
  users: Array<{ name: string; user?: Record<string, unknown> | null }>;
  contexts: Array<{ name: string; context: { cluster: string; user?: string } }>;
}
const simpleUserSchema = z.strictObject({
  'client-certificate-data': z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-key-data': z.string().optional(),
  'client-key': z.string().optional(),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
});

/** $KUBECONFIG's files, in order. */
export const kubeconfigList = (value: string | undefined): string[] => (value ?? '').split(delimiter).filter(Boolean);

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/**
 * Credentials from `--kubeconfig`, then $KUBECONFIG, then the in-cluster ServiceAccount. Kubeconfigs with client
 * certificates or tokens (the shapes clusters and ServiceAccounts produce) are read directly; anything else (exec
 * plugins, auth providers, basic auth) goes through @kubernetes/client-node's KubeConfig, loaded only then, which
 * keeps its ~40 MB of generated models out of every process that does not need them.
 * Loading follows kubectl: `--kubeconfig` names one file that must exist; $KUBECONFIG is a list merged in order
 * (the first file to define a name or the current context wins; missing files are skipped); relative paths are
 * resolved against the file that holds them. A list stands for a $KUBECONFIG the caller read itself.
 */
export async function loadCredentials(kubeconfig?: string | readonly string[]): Promise<Credentials> {
  if (typeof kubeconfig === 'string' && kubeconfig !== '') return fromKubeconfig(readKubeconfigs([kubeconfig], true));
  const list = typeof kubeconfig === 'object' ? kubeconfig.filter(Boolean) : kubeconfigList(process.env.KUBECONFIG);
  if (list.length > 0) return fromKubeconfig(readKubeconfigs(list, false));
  if (process.env.KUBERNETES_SERVICE_HOST) return inCluster();
  throw new ConfigError('no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a cluster');
}

const PATH_KEYS = { cluster: ['certificate-authority'], user: ['client-certificate', 'client-key', 'tokenFile'] } as const;

function absolutePaths<T extends Record<string, unknown>>(stanza: T, keys: readonly string[], base: string): T {
  const out: Record<string, unknown> = { ...stanza };
  for (const key of keys) if (typeof out[key] === 'string' && out[key] !== '' && !isAbsolute(out[key])) out[key] = resolve(base, out[key]);
  return out as T;
}

/** Reads and merges kubeconfig files as kubectl does. */
export function readKubeconfigs(paths: readonly string[], mustExist: boolean): Kubeconfig {
  const merged: Kubeconfig = { source: paths.join(delimiter), clusters: [], users: [], contexts: [] };
  let found = 0;
  for (const path of paths) {
    if (!existsSync(path)) {
      if (mustExist) throw new ConfigError(`kubeconfig ${path} does not exist`);
      continue;
    }
    found++;
    let file: KubeconfigFile;
    try {
      file = kubeconfigFileSchema.parse(parse(readFileSync(path, 'utf8')) ?? {});
    } catch (err) {
      throw new ConfigError(`kubeconfig ${path} is not a valid kubeconfig: ${err instanceof z.ZodError ? z.prettifyError(err) : (err as Error).message}`, { cause: err });
    }
    const base = dirname(resolve(path));
    merged['current-context'] ||= file['current-context'] || undefined;
    for (const c of file.clusters ?? []) if (!merged.clusters.some((m) => m.name === c.name)) merged.clusters.push({ name: c.name, cluster: absolutePaths(c.cluster, PATH_KEYS.cluster, base) });
    for (const u of file.users ?? []) if (!merged.users.some((m) => m.name === u.name)) merged.users.push({ name: u.name, user: u.user ? absolutePaths(u.user, PATH_KEYS.user, base) : u.user });
    for (const c of file.contexts ?? []) if (!merged.contexts.some((m) => m.name === c.name)) merged.contexts.push({ name: c.name, context: c.context });
  }
  if (found === 0) throw new ConfigError(`none of the kubeconfig files in KUBECONFIG exists: ${paths.join(', ')}`);
  return merged;
}

function inCluster(): Credentials {
  const host = process.env.KUBERNETES_SERVICE_HOST!;
  const port = process.env.KUBERNETES_SERVICE_PORT ?? '443';
  const caPem = readFileSync(`${SA_DIR}/ca.crt`, 'utf8');
  return {
    server: new URL(`https://${host.includes(':') ? `[${host}]` : host}:${port}`),
    tls: { ca: caPem },
    caPem,
    headers: async () => ({ Authorization: `Bearer ${readFileSync(`${SA_DIR}/token`, 'utf8').trim()}` }),
  };
}

function fromKubeconfig(config: Kubeconfig): Promise<Credentials> | Credentials {
  const where = `kubeconfig ${config.source}`;
  const contextName = config['current-context'] ?? config.contexts[0]?.name;
  const context = config.contexts.find((c) => c.name === contextName)?.context;
  if (!context) throw new ConfigError(`${where}: no context "${contextName}"`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster) throw new ConfigError(`${where}: no cluster "${context.cluster}"`);
  // Our client dials the API directly; a proxy it silently ignored would send traffic elsewhere than the user meant.
  if (cluster['proxy-url']) throw new ConfigError(`${where}: cluster "${context.cluster}" sets proxy-url, which Raven's components do not support: they must reach the API server directly (remove proxy-url)`);
  const user = simpleUserSchema.safeParse(config.users.find((u) => u.name === context.user)?.user ?? {});
  if (!user.success) return viaClientNode(config);
  const u = user.data;
  const caPem = cluster['certificate-authority-data'] ? b64(cluster['certificate-authority-data']) : cluster['certificate-authority'] ? readFileSync(cluster['certificate-authority'], 'utf8') : undefined;
  const tls: TlsOptions = {
    ...(caPem ? { ca: caPem } : {}),
    ...(u['client-certificate-data'] ? { cert: b64(u['client-certificate-data']) } : u['client-certificate'] ? { cert: readFileSync(u['client-certificate'], 'utf8') } : {}),
    ...(u['client-key-data'] ? { key: b64(u['client-key-data']) } : u['client-key'] ? { key: readFileSync(u['client-key'], 'utf8') } : {}),
    ...(cluster['insecure-skip-tls-verify'] ? { rejectUnauthorized: false } : {}),
    ...(cluster['tls-server-name'] ? { servername: cluster['tls-server-name'] } : {}),
  };
  const token = u.token;
  const tokenFile = u.tokenFile;
  return {
    server: new URL(cluster.server),
    tls,
    caPem,
    headers: async (): Promise<Record<string, string>> => {
      const bearer = tokenFile ? readFileSync(tokenFile, 'utf8').trim() : token;
      return bearer ? { Authorization: `Bearer ${bearer}` } : {};
    },
  };
}

async function viaClientNode(config: Kubeconfig): Promise<Credentials> {
  const { KubeConfig } = await import('./client-node-config.ts');
  const kc = new KubeConfig();
  const { source, ...document } = config;
  kc.loadFromString(stringify({ apiVersion: 'v1', kind: 'Config', ...document }));
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError(`kubeconfig ${source} has no current cluster`);
  const tls: RequestOptions = {};
  await kc.applyToHTTPSOptions(tls);
  const caPem = cluster.caData ? b64(cluster.caData) : cluster.caFile ? readFileSync(cluster.caFile, 'utf8') : undefined;
  return {
    server: new URL(cluster.server),
    tls: { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized, servername: tls.servername },
    caPem,
    headers: async () => {
      const opts: RequestOptions = { headers: {} };
      await kc.applyToHTTPSOptions(opts);
      (opts.agent as { destroy?: () => void } | undefined)?.destroy?.();
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) if (typeof v === 'string') headers[k] = v;
      if (opts.auth) headers.Authorization = `Basic ${Buffer.from(opts.auth).toString('base64')}`;
      return headers;
    },
  };
}
