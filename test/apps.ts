import { spawn } from 'node:child_process';
import { appCommand, type AppName } from '@raven/testbed';

/** Runs an app to completion, without a cluster; callers run several at once, since each start costs seconds on a loaded machine. */
export function runApp(app: AppName, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const { command, args: base } = appCommand(app);
  const child = spawn(command, [...base, ...args], { timeout: 60_000, env: { ...process.env, KUBECONFIG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, out, err })));
}
