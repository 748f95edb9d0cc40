import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { SYSTEM_NAMESPACE } from '@raven/api-types';
import { RESOURCES, isAlreadyExists, isNotFound, type KubeClient } from '@raven/controller-kit';
import { TSX_LOADER, WORKSPACE_ROOT } from '@raven/testbed';
import { run } from '../src/cli.ts';

/** Runs ravenctl in this process (fast; the same code path as the binary minus argv handling). */
export async function ravenctl(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(args, { stdout: (t) => { stdout += t; }, stderr: (t) => { stderr += t; }, env: { HOME: '/nonexistent', ...env } });
  return { code, stdout, stderr };
}

/** Runs the shipped program as a process: the bundle under `npm test` (RAVEN_APP_MODE=bundle), else the sources via tsx. */
export function ravenctlProcess(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const argv = process.env.RAVEN_APP_MODE === 'bundle'
    ? [join(WORKSPACE_ROOT, 'dist/apps/ravenctl/main.js')]
    : ['--import', TSX_LOADER, join(WORKSPACE_ROOT, 'apps/ravenctl/src/main.ts')];
  return new Promise((resolve) => {
    execFile(process.execPath, [...argv, ...args], { env: { PATH: process.env.PATH, HOME: '/nonexistent', ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function ensureRavenConfig(kube: KubeClient, data: Record<string, string>): Promise<void> {
  const ref = { namespace: SYSTEM_NAMESPACE, name: 'raven-cfg' };
  try {
    await kube.create(RESOURCES.configMaps, { apiVersion: 'v1', kind: 'ConfigMap', metadata: ref, data });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
    await kube.patch(RESOURCES.configMaps, ref, { data }, 'merge');
  }
}

export async function deleteIfExists(load: () => Promise<unknown>): Promise<void> {
  try {
    await load();
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
}
