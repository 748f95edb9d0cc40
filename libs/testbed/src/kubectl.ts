import { execFile, spawn } from 'node:child_process';
import { binaryPath } from './binaries.ts';

export class KubectlError extends Error {
  override readonly name = 'KubectlError';
  constructor(readonly args: string[], readonly stderr: string, readonly code: number | null) {
    super(`kubectl ${args.join(' ')} failed (${code}): ${stderr.trim()}`);
  }
}

/** Runs the pinned kubectl against a kubeconfig; resolves stdout, rejects with stderr. */
export function kubectl(kubeconfig: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(binaryPath('kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new KubectlError(args, stderr || err.message, child.exitCode));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

/**
 * Runs a long-lived kubectl (`logs -f`, `port-forward`) until `until` finds what it waits for in its stdout, then
 * stops it (by PID: it is ours) and resolves that; rejects when kubectl exits first or `timeoutMs` passes.
 */
export function kubectlUntil<T>(kubeconfig: string, args: string[], until: (stdout: string) => T | undefined, timeoutMs = 20_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(binaryPath('kubectl'), [`--kubeconfig=${kubeconfig}`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const finish = (err: Error | undefined, value?: T) => {
      clearTimeout(timer);
      child.stdout.removeAllListeners('data');
      child.removeAllListeners('exit');
      child.kill('SIGTERM');
      if (err) reject(err);
      else resolve(value as T);
    };
    const timer = setTimeout(() => finish(new KubectlError(args, `timed out after ${timeoutMs} ms; stdout so far: ${stdout.slice(-500)} ${stderr}`, null)), timeoutMs);
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      const found = until(stdout);
      if (found !== undefined) finish(undefined, found);
    });
    child.on('exit', (code) => finish(new KubectlError(args, stderr || `exited before the output expected: ${stdout.slice(-500)}`, code)));
  });
}
