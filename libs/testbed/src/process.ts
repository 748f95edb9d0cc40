import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

export interface StartOptions {
  name: string;
  command: string;
  args: string[];
  logFile: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Survive the parent (for `npm run cluster -- up`). */
  detached?: boolean;
}

/** A child process with its output in a log file, stoppable with a grace period. */
export class ManagedProcess {
  private exited: Promise<number | null>;
  private constructor(readonly name: string, readonly child: ChildProcess, readonly logFile: string) {
    this.exited = new Promise((resolve) => {
      if (child.exitCode !== null) resolve(child.exitCode);
      child.once('exit', (code, signal) => resolve(code ?? (signal ? -1 : null)));
    });
  }

  static start(opts: StartOptions): ManagedProcess {
    const spawnOpts: SpawnOptions = { env: opts.env ?? process.env, cwd: opts.cwd, detached: opts.detached ?? false };
    // The child writes its output straight into the log file, so nothing is lost when it exits abruptly.
    const fd = openSync(opts.logFile, 'a');
    const child = spawn(opts.command, opts.args, { ...spawnOpts, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    if (opts.detached) child.unref();
    return new ManagedProcess(opts.name, child, opts.logFile);
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** For `waitFor` checks: throws WaitAbortedError (with the log's tail) if the process has exited. */
  assertRunning(): void {
    if (!this.running) {
      let tail = '';
      try {
        tail = readFileSync(this.logFile, 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        // no log yet
      }
      throw new WaitAbortedError(`${this.name} exited (${this.child.exitCode ?? this.child.signalCode}); log tail:\n${tail}`);
    }
  }

  waitExit(): Promise<number | null> {
    return this.exited;
  }

  async stop(graceMs = 5_000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const done = await Promise.race([this.exited.then(() => true), sleep(graceMs).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }

  kill(): Promise<void> {
    return this.stop(0, 'SIGKILL');
  }
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Thrown from a `waitFor` check to stop waiting at once (for example: the process being waited on exited). */
export class WaitAbortedError extends Error {
  override readonly name = 'WaitAbortedError';
}

/** Polls `check` until it returns a value or throws a timeout naming `what`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 30_000, intervalMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
    } catch (err) {
      if (err instanceof WaitAbortedError) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ''}`);
    }
    await sleep(intervalMs);
  }
}
