import { writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { CONFIGMAPS, GATEWAY_CRD_NAME, HEARTBEAT, PSK_SECRET } from '@raven/api-types';
import { RESOURCES, loadCredentials, resourcePath, type KubeClient, type ResourceType } from '@raven/controller-kit';
import { stringify } from 'yaml';
import { safeSegment, tarGz, type ArchiveEntry } from './archive.ts';
import type { Command } from './cli.ts';
import { VERSION } from './version.ts';
import { DEFAULT_DIAGNOSE_OPTIONS } from './diagnose.ts';
import { fullDiagnose } from './diagnose-command.ts';
import { EXIT, UsageError } from './exit.ts';
import { toDot } from './graph.ts';
import { SecretCollector, redactObject, scrubText } from './redact.ts';
import { buildShowView } from './show.ts';
import { CSR_PREFIX, PICKUP_LEADER_LEASE, RAVEN_PART_OF } from './snapshot.ts';
import { buildTopology } from './topology.ts';

const APPS = {
  daemonSets: { group: 'apps', version: 'v1', plural: 'daemonsets', namespaced: true },
  deployments: { group: 'apps', version: 'v1', plural: 'deployments', namespaced: true },
} as const satisfies Record<string, ResourceType>;

interface Named { metadata?: { name?: string; namespace?: string }; kind?: string }
interface PodLike extends Named { spec?: { containers?: { name?: string }[] } }
interface EventLike extends Named { regarding?: { kind?: string; name?: string } }

/** GET returning text (container logs are not JSON), with the same credentials as the KubeClient. */
export async function getText(kubeconfig: string | readonly string[] | undefined, path: string, timeoutMs = 30_000): Promise<string> {
  const creds = await loadCredentials(kubeconfig);
  const headers = await creds.headers();
  return new Promise((resolve, reject) => {
    const req = request(new URL(path, creds.server), { ...creds.tls, headers: { ...headers, 'User-Agent': `ravenctl/${VERSION}` }, timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        if ((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300) resolve(text);
        else reject(new Error(`GET ${path}: ${res.statusCode}: ${text.slice(0, 500)}`));
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export function bundleName(now: Date): string {
  return `raven-gather-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}`;
}

interface Collected {
  /** `kind`: what a list holds (list items carry no kind of their own). */
  files: { path: string; kind: string; data: unknown }[];
  texts: { path: string; text: string }[];
  errors: string[];
}

async function collectObjects(kube: KubeClient, ns: string, out: Collected): Promise<PodLike[]> {
  const attempt = async <T>(what: string, load: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await load();
    } catch (err) {
      out.errors.push(`${what}: ${(err as Error).message}`);
      return undefined;
    }
  };
  const list = async (file: string, kind: string, type: ResourceType, opts: { namespace?: string; labelSelector?: string } = {}, keep: (o: Named) => boolean = () => true) => {
    const res = await attempt(file, () => kube.listAll<Named>(type, opts));
    const items = (res?.items ?? []).filter(keep);
    if (res) out.files.push({ path: `resources/${file}.yaml`, kind, data: items });
    return items;
  };
  const get = async (file: string, kind: string, type: ResourceType, ref: { namespace?: string; name: string }) => {
    const obj = await attempt(file, () => kube.get<Named>(type, ref));
    if (obj) out.files.push({ path: `resources/${file}.yaml`, kind, data: obj });
  };
  const ravenName = (o: Named) => /^(raven|x-raven)/.test(o.metadata?.name ?? '');
  await list('gateways', 'Gateway', RESOURCES.gateways);
  await get('crd-gateways', 'CustomResourceDefinition', RESOURCES.crds, { name: GATEWAY_CRD_NAME });
  await list('nodes', 'Node', RESOURCES.nodes);
  await list('leases-heartbeats', 'Lease', RESOURCES.leases, { namespace: HEARTBEAT.namespace });
  await get('lease-gateway-pickup', 'Lease', RESOURCES.leases, { namespace: ns, name: PICKUP_LEADER_LEASE });
  await list('configmaps', 'ConfigMap', RESOURCES.configMaps, { namespace: ns }, (o) => ravenName(o) || Object.values(CONFIGMAPS).includes(o.metadata?.name as never));
  await list('services', 'Service', RESOURCES.services, { namespace: ns }, ravenName);
  await list('secrets', 'Secret', RESOURCES.secrets, { namespace: ns }, (o) => ravenName(o) || o.metadata?.name === PSK_SECRET.name);
  await list('daemonsets', 'DaemonSet', APPS.daemonSets, { namespace: ns, labelSelector: RAVEN_PART_OF });
  await list('deployments', 'Deployment', APPS.deployments, { namespace: ns, labelSelector: RAVEN_PART_OF });
  await list('csrs', 'CertificateSigningRequest', RESOURCES.csrs, {}, (o) => Object.values(CSR_PREFIX).some((p) => (o.metadata?.name ?? '').startsWith(p)));
  const pods = (await list('pods', 'Pod', RESOURCES.pods, { namespace: ns, labelSelector: RAVEN_PART_OF })) as PodLike[];
  const aboutRaven = (e: EventLike) => e.regarding?.kind === 'Gateway' || /^(raven|x-raven)/.test(e.regarding?.name ?? '');
  for (const eventNs of [...new Set([ns, 'default', HEARTBEAT.namespace])]) {
    await list(`events-${safeSegment(eventNs)}`, 'Event', RESOURCES.events, { namespace: eventNs }, (e) => aboutRaven(e as EventLike));
  }
  return pods;
}

async function collectLogs(kubeconfig: string | readonly string[] | undefined, ns: string, pods: PodLike[], tailLines: number, out: Collected): Promise<void> {
  for (const pod of pods) {
    const name = pod.metadata?.name ?? '';
    for (const container of pod.spec?.containers ?? []) {
      const c = container.name ?? '';
      const path = `${resourcePath(RESOURCES.pods, { namespace: ns, name, subresource: 'log' })}?container=${encodeURIComponent(c)}&tailLines=${tailLines}`;
      try {
        out.texts.push({ path: `logs/${safeSegment(name)}/${safeSegment(c)}.log`, text: await getText(kubeconfig, path) });
      } catch (err) {
        out.errors.push(`logs of ${name}/${c}: ${(err as Error).message}`);
      }
    }
  }
}

/** The archive's files, every one redacted: structured objects by kind, then all text scrubbed of every secret seen. */
export function bundleEntries(root: string, collected: Collected, extra: { path: string; text: string }[]): ArchiveEntry[] {
  const secrets = new SecretCollector();
  const structured = collected.files.map((f) => ({
    path: f.path,
    // lineWidth 0: folded lines would split a secret and hide it from scrubText.
    text: stringify(Array.isArray(f.data) ? f.data.map((o) => redactObject(o, secrets, f.kind)) : redactObject(f.data, secrets, f.kind), { lineWidth: 0 }),
  }));
  const all = [...extra, ...structured, ...collected.texts, { path: 'errors.txt', text: collected.errors.length ? collected.errors.join('\n') + '\n' : 'none\n' }];
  return all.map((f) => ({ path: `${root}/${f.path}`, content: scrubText(f.text, secrets) }));
}

export const gatherCommand: Command = {
  summary: 'A support bundle (Raven objects, events, logs where available, show and diagnose output) as one tar.gz, secrets redacted',
  flags: { file: { type: 'string' }, 'tail-lines': { type: 'string' } },
  flagHelp: { file: 'archive path (default ./raven-gather-<UTC time>.tar.gz)', 'tail-lines': 'log lines per container (default 5000)' },
  async run(ctx) {
    const tail = Number(ctx.values['tail-lines'] ?? 5000);
    if (!Number.isInteger(tail) || tail <= 0) throw new UsageError(`--tail-lines must be a positive integer; got "${String(ctx.values['tail-lines'])}"`);
    const snapshot = await ctx.snapshot();
    const kube = await ctx.kube();
    const collected: Collected = { files: [], texts: [], errors: [] };
    const pods = await collectObjects(kube, snapshot.namespace, collected);
    await collectLogs(ctx.kubeconfig, snapshot.namespace, pods, tail, collected);
    const now = new Date(snapshot.takenAt);
    const root = bundleName(now);
    const { report: findings, env } = await fullDiagnose(snapshot, kube, { ...DEFAULT_DIAGNOSE_OPTIONS, askAgents: true });
    // Each tunnel-agent's own report, as it answered (already schema-checked; it holds no secrets).
    const agentReports = env.agents.flatMap((a) => (a.report ? [{ path: `agents/${a.pod}.json`, text: JSON.stringify(a.report, null, 2) + '\n' }] : []));
    const entries = bundleEntries(root, collected, [
      ...agentReports,
      { path: 'version.txt', text: `ravenctl ${VERSION}\ntaken ${now.toISOString()}\n` },
      { path: 'show.json', text: JSON.stringify(buildShowView(snapshot), null, 2) + '\n' },
      { path: 'diagnose.json', text: JSON.stringify(findings, null, 2) + '\n' },
      { path: 'topology.dot', text: toDot(buildTopology(snapshot)) },
    ]);
    const file = typeof ctx.values.file === 'string' ? ctx.values.file : `${root}.tar.gz`;
    writeFileSync(file, tarGz(entries, now));
    const summary = { file, files: entries.length, findings: findings.findings.length, unavailable: collected.errors.length };
    ctx.io.stdout(ctx.output === 'table'
      ? `wrote ${file}: ${entries.length} files, diagnose found ${findings.findings.length} problem(s), ${collected.errors.length} item(s) unavailable (see errors.txt); secrets redacted\n`
      : JSON.stringify(summary) + '\n');
    return EXIT.healthy;
  },
};
