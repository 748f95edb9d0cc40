import { existsSync, readFileSync } from 'node:fs';
import type { AgentOptions, RequestOptions } from 'node:https';
import { parse } from 'yaml';
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

const kubeconfigSchema = z.object({
  'current-context': z.string().optional(),
  clusters: z.array(z.object({ name: z.string(), cluster: z.looseObject({ server: z.string(), 'certificate-authority-data': z.string().optional(), 'certificate-authority': z.string().optional(), 'insecure-skip-tls-verify': z.boolean().optional(), 'tls-server-name': z.string().optional() }) })),
  users: z.array(z.object({ name: z.string(), user: z.looseObject({}).optional() })).optional(),
  contexts: z.array(z.object({ name: z.string(), context: z.looseObject({ cluster: z.string(), user: z.string().optional() }) })),
});
const simpleUserSchema = z.strictObject({
  'client-certificate-data': z.string().optional(),
  'client-certificate': z.string().optional(),
  'client-key-data': z.string().optional(),
  'client-key': z.string().optional(),
  token: z.string().optional(),
  tokenFile: z.string().optional(),
});

const b64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/**
 * Credentials from `--kubeconfig`, then $KUBECONFIG, then the in-cluster ServiceAccount. Kubeconfigs with client
 * certificates or tokens (the shapes clusters and ServiceAccounts produce) are read directly; anything else (exec
 * plugins, auth providers, basic auth) goes through @kubernetes/client-node's KubeConfig, loaded only then, which
 * keeps its ~40 MB of generated models out of every process that does not need them.
 */
export async function loadCredentials(kubeconfig?: string): Promise<Credentials> {
  const path = kubeconfig || process.env.KUBECONFIG;
  if (path) return fromKubeconfig(path);
  if (process.env.KUBERNETES_SERVICE_HOST) return inCluster();
  throw new ConfigError('no kubeconfig: pass --kubeconfig, set KUBECONFIG, or run in a cluster');
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

function fromKubeconfig(path: string): Promise<Credentials> | Credentials {
  if (!existsSync(path)) throw new ConfigError(`kubeconfig ${path} does not exist`);
  const config = kubeconfigSchema.parse(parse(readFileSync(path, 'utf8')));
  const contextName = config['current-context'] ?? config.contexts[0]?.name;
  const context = config.contexts.find((c) => c.name === contextName)?.context;
  if (!context) throw new ConfigError(`kubeconfig ${path}: no context "${contextName}"`);
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  if (!cluster) throw new ConfigError(`kubeconfig ${path}: no cluster "${context.cluster}"`);
  const user = simpleUserSchema.safeParse(config.users?.find((u) => u.name === context.user)?.user ?? {});
  if (!user.success) return viaClientNode(path);
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

async function viaClientNode(path: string): Promise<Credentials> {
  const { KubeConfig } = await import('./client-node-config.ts');
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new ConfigError(`kubeconfig ${path} has no current cluster`);
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
