import { execFile, type ExecFileException } from 'node:child_process';
import { CommandError } from './errors.ts';

export interface RunOptions {
  /** Written to the command's stdin, which is then closed. */
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs a program with an argument vector (never through a shell). Throws CommandError on failure. */
export interface Exec {
  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult>;
}

const MAX_OUTPUT_BYTES = 512 * 1024 * 1024;

/** Runs commands directly on this host (in the caller's network namespace). */
export class HostExec implements Exec {
  run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = execFile(cmd, args, { maxBuffer: MAX_OUTPUT_BYTES, encoding: 'utf8' }, (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        reject(new CommandError(cmd, args, exitCodeOf(error), stderr || error.message, stdout, { cause: error }));
      });
      // A command that exits before reading all of its input must surface as its own failure, not as EPIPE.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(opts.input ?? '');
    });
  }
}

function exitCodeOf(error: ExecFileException): number | null {
  return typeof error.code === 'number' ? error.code : null;
}

export const hostExec: Exec = new HostExec();

/** Runs commands inside a named network namespace: `ip netns exec <netns> cmd args...`. */
export class NetnsExec implements Exec {
  constructor(
    readonly netns: string,
    private readonly outer: Exec = hostExec,
  ) {}

  run(cmd: string, args: string[], opts?: RunOptions): Promise<RunResult> {
    return this.outer.run('ip', ['netns', 'exec', this.netns, cmd, ...args], opts);
  }
}
