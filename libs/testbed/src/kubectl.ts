import { execFile } from 'node:child_process';
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
