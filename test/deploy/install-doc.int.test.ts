import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { LABELS } from '@raven/api-types';
import { isNotFound, RESOURCES, type KubeClient, type ResourceType } from '@raven/controller-kit';
import { adminClient, binaryPath, deleteNode, registerNode, VERSIONS, WORKSPACE_ROOT } from '@raven/testbed';
import { renderOverlay, run, workloads } from './support.ts';

/**
 * Acceptance 5: the README's "Install on a cluster" section is kept true by running it. Its ```sh blocks run in
 * order, in bash, from the repository root, against the shared real apiserver:
 *  - plain `sh` blocks for real (the PSK Secret, node labels, the Gateways, reads), on the walkthrough's six Nodes,
 *    which this test registers and removes again;
 *  - `sh dry-run` blocks with every write as a server-side dry run (installing workloads makes no sense without
 *    kubelets); see doc-shim.ts;
 *  - `sh manual` blocks are not run (image builds, waiting for rollouts, node debugging) and may not write.
 * The kube-apiserver snippet is checked against the pinned kube-apiserver's flags.
 */
const cluster = inject('cluster');
const DOC = join(WORKSPACE_ROOT, 'README.md');
// The README's "Install on a cluster" section, with everything before it blanked so line numbers stay the README's.
const markdown = (() => {
  const text = readFileSync(DOC, 'utf8');
  const start = text.indexOf('## Install on a cluster');
  const end = text.indexOf('\n## ', start + 1);
  if (start < 0 || end < 0) throw new Error('README.md has no "## Install on a cluster" section');
  return text.slice(0, start).replace(/[^\n]/g, '') + text.slice(start, end);
})();

interface Block { lang: string; tag: string; body: string; line: number }
const blocks: Block[] = [...markdown.matchAll(/^```(\w+)[ \t]*([\w-]*)[ \t]*\n([\s\S]*?)^```[ \t]*$/gm)].map((m) => ({
  lang: m[1]!, tag: m[2]!, body: m[3]!, line: markdown.slice(0, m.index).split('\n').length,
}));
const shell = blocks.filter((b) => b.lang === 'sh');
const runnable = shell.filter((b) => b.tag !== 'manual');
const WRITES = /\bkubectl\b[^\n|]*\b(apply|create|delete|label|annotate|patch|replace|scale|edit)\b|\bhelm\s+(install|upgrade)\b/;

const { nodes } = JSON.parse(readFileSync(join(WORKSPACE_ROOT, 'k8s/examples/walkthrough/nodes.json'), 'utf8')) as { nodes: Array<{ name: string; gateway: string; internalIP: string }> };
const GATEWAYS = ['gw-cloud', 'gw-hangzhou', 'gw-qingdao'];
const PSK = { namespace: 'kube-system', name: 'raven-agent-secret' };

const shimDir = mkdtempSync(join(tmpdir(), 'raven-doc-'));
const logFile = join(shimDir, 'calls.jsonl');
let kube: KubeClient;

async function absent(resource: ResourceType, ref: { name: string; namespace?: string }): Promise<boolean> {
  try {
    await kube.get(resource, ref);
    return false;
  } catch (err) {
    if (isNotFound(err)) return true;
    throw err;
  }
}

async function cleanUp(): Promise<void> {
  for (const gw of GATEWAYS) await kube.delete(RESOURCES.gateways, { name: gw }).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
  for (const n of nodes) await deleteNode(kube, n.name);
  await kube.delete(RESOURCES.secrets, PSK).catch((err: unknown) => { if (!isNotFound(err)) throw err; });
}

beforeAll(async () => {
  kube = await adminClient(cluster);
  // The doc's names are fixed (the walkthrough's), so never run over someone else's objects.
  for (const gw of GATEWAYS) expect(await absent(RESOURCES.gateways, { name: gw }), `Gateway ${gw} already exists`).toBe(true);
  for (const n of nodes) expect(await absent(RESOURCES.nodes, { name: n.name }), `Node ${n.name} already exists`).toBe(true);
  expect(await absent(RESOURCES.secrets, PSK), 'the PSK Secret already exists').toBe(true);
  for (const n of nodes) await registerNode(kube, { name: n.name, internalIP: n.internalIP });
  for (const tool of ['kubectl', 'helm']) {
    const path = join(shimDir, tool);
    writeFileSync(path, `#!/usr/bin/env bash\nexec "${process.execPath}" --import tsx "${join(WORKSPACE_ROOT, 'test/deploy/doc-shim.ts')}" ${tool} "$@"\n`);
    chmodSync(path, 0o755);
  }
});

afterAll(async () => {
  await cleanUp();
  kube.close();
  rmSync(shimDir, { recursive: true, force: true });
});

const calls = (): Array<{ tool: string; args: string[]; mode: string }> =>
  readFileSync(logFile, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as { tool: string; args: string[]; mode: string });

describe('README: Install on a cluster', () => {
  it('has real, dry-run and manual blocks, and the manual ones write nothing', () => {
    expect(shell.filter((b) => b.tag === '').length).toBeGreaterThanOrEqual(5);
    expect(shell.filter((b) => b.tag === 'dry-run').length).toBeGreaterThanOrEqual(3);
    for (const b of shell) expect(['', 'dry-run', 'manual'], `line ${b.line}`).toContain(b.tag);
    for (const b of shell.filter((x) => x.tag === 'manual')) expect(b.body, `manual block at line ${b.line}`).not.toMatch(WRITES);
  });

  // In document order: later blocks rely on earlier ones (labels before Gateways, as a reader would run them).
  it.each(runnable.map((b) => [`line ${b.line} (${b.tag || 'real'}): ${b.body.split('\n')[0]}`, b] as const))('%s', async (_, block) => {
    writeFileSync(logFile, '');
    await run('bash', ['-euo', 'pipefail', '-c', block.body], {
      cwd: WORKSPACE_ROOT,
      env: {
        PATH: `${shimDir}:${process.env.PATH ?? ''}`, HOME: shimDir, KUBECONFIG: cluster.kubeconfig,
        RAVEN_DOC_MODE: block.tag === 'dry-run' ? 'dry-run' : 'real', RAVEN_DOC_LOG: logFile,
        RAVEN_REAL_KUBECTL: binaryPath('kubectl'), RAVEN_REAL_HELM: binaryPath('helm'), RAVEN_KUBE_VERSION: VERSIONS.kubernetes,
      },
    });
    // Every kubectl/helm command of the block went through the shim (none skipped by the shell).
    const commands = block.body.split('\n').filter((l) => /^\s*(kubectl|helm) |\| kubectl /.test(l)).length;
    expect(calls().length).toBeGreaterThanOrEqual(commands);
  });

  it('left what the real blocks create, and nothing from the dry runs', async () => {
    const secret = await kube.get<{ data: Record<string, string> }>(RESOURCES.secrets, PSK);
    expect(Buffer.from(secret.data['vpn-connection-psk']!, 'base64').toString()).toMatch(/^[A-Za-z0-9+/]{64}$/);
    for (const n of nodes) {
      const node = await kube.get<{ metadata: { labels: Record<string, string> } }>(RESOURCES.nodes, { name: n.name });
      expect(node.metadata.labels[LABELS.gateway], n.name).toBe(n.gateway);
    }
    for (const gw of GATEWAYS) {
      const obj = await kube.get<{ spec: { endpoints: Array<{ type: string }> } }>(RESOURCES.gateways, { name: gw });
      expect(obj.spec.endpoints.map((e) => e.type).sort(), gw).toEqual(['proxy', 'tunnel']);
    }
    expect(await absent(RESOURCES.configMaps, { namespace: 'kube-system', name: 'raven-agent-config' })).toBe(true);
    expect(await absent(RESOURCES.services, { namespace: 'kube-system', name: 'raven-proxy-dns' })).toBe(true);
  });

  it('labels nodes the way the manifests select them', async () => {
    const wanted = new Map<string, string>();
    for (const w of workloads(await renderOverlay('wireguard'))) {
      for (const [k, v] of Object.entries((w.spec.template.spec as { nodeSelector?: Record<string, string> }).nodeSelector ?? {})) {
        if (k !== 'kubernetes.io/os') wanted.set(`${k}=${v}`, w.metadata.name);
      }
    }
    expect([...wanted.keys()].sort()).toEqual(['raven.openyurt.io/proxy=client', 'raven.openyurt.io/proxy=server']);
    for (const selector of wanted.keys()) {
      const [k, v] = selector.split('=');
      const labelled = (await kube.list<{ metadata: { name: string } }>(RESOURCES.nodes, { labelSelector: `${k}=${v}` })).items.map((n) => n.metadata.name);
      expect(labelled.length, selector).toBeGreaterThan(0);
    }
    const edge = (await kube.list<{ metadata: { name: string } }>(RESOURCES.nodes, { labelSelector: 'openyurt.io/is-edge-worker=true' })).items.map((n) => n.metadata.name);
    expect(edge.sort()).toEqual(nodes.filter((n) => n.gateway !== 'gw-cloud').map((n) => n.name).sort());
  });

  it('lists exactly the overlays that exist', () => {
    const table = [...markdown.matchAll(/^\| `([\w-]+)` \|/gm)].map((m) => m[1]!).filter((name) => !name.startsWith('raven-'));
    expect(table.sort()).toEqual(readdirSync(join(WORKSPACE_ROOT, 'k8s/overlays')).sort());
  });

  it('gives kube-apiserver settings that the pinned kube-apiserver accepts', async () => {
    const snippet = blocks.find((b) => b.lang === 'yaml' && b.tag === 'kube-apiserver');
    const pod = parse(snippet!.body) as { spec: { dnsPolicy: string; dnsConfig: { nameservers: string[] }; containers: Array<{ command: string[] }> } };
    expect(pod.spec.dnsPolicy).toBe('None');
    expect(pod.spec.dnsConfig.nameservers).toHaveLength(1);
    const help = await run(binaryPath('kube-apiserver'), ['--help']);
    const flags = pod.spec.containers[0]!.command.filter((a) => a.startsWith('--'));
    expect(flags).toEqual(['--kubelet-preferred-address-types=Hostname,InternalIP,ExternalIP']);
    for (const flag of flags) expect(help).toContain(`${flag.split('=')[0]} `);
    for (const type of flags[0]!.split('=')[1]!.split(',')) expect(help).toMatch(new RegExp(`kubelet-preferred-address-types.*default \\[[^\\]]*${type}`));
  });
});
