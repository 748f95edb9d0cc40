import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { binaryPath, VERSIONS, WORKSPACE_ROOT } from '@raven/testbed';
import { parseManifests, type K8sObject } from './manifests.ts';

/** Shared by the deployment tests: render the overlays and the chart (see manifests.ts for reading them). */

export * from './manifests.ts';

export const OVERLAYS = ['wireguard', 'libreswan', 'l3-only', 'l7-only', 'dev', 'box'] as const;
export type Overlay = (typeof OVERLAYS)[number];

export const APPS = ['gateway-pickup', 'tunnel-agent', 'proxy-server', 'proxy-client'] as const;
export type App = (typeof APPS)[number];

export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  constructor(readonly command: string, readonly code: number | string | null, readonly stderr: string, readonly stdout = '') {
    super(`${command} failed (${code}): ${stderr.trim().slice(0, 2_000)}`);
  }
}

/** Runs a program; resolves stdout, rejects with its stderr. */
export function run(command: string, args: string[], opts: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { cwd: opts.cwd ?? WORKSPACE_ROOT, env: opts.env ?? process.env, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new CommandFailedError(`${command} ${args.join(' ')}`, err.code ?? null, stderr || err.message, stdout));
      else resolve(stdout);
    });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

export async function renderOverlay(overlay: string): Promise<K8sObject[]> {
  return parseManifests(await run(binaryPath('kubectl'), ['kustomize', join(WORKSPACE_ROOT, 'k8s/overlays', overlay)]));
}

/** `helm template` of charts/raven as it would install into kube-system, CRDs included. */
export async function renderChart(values: Record<string, string> = {}): Promise<K8sObject[]> {
  const sets = Object.entries(values).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const out = await run(binaryPath('helm'), [
    'template', 'raven', join(WORKSPACE_ROOT, 'charts/raven'), '--namespace', 'kube-system', '--include-crds',
    '--kube-version', VERSIONS.kubernetes, ...sets,
  ]);
  return parseManifests(out);
}

export const packageVersion = (): string => (JSON.parse(readFileSync(join(WORKSPACE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
