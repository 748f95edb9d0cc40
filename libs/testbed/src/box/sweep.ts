import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CommandError, hostExec } from '@raven/netlink';

/**
 * Killing everything inside a namespace. Daemons such as wireguard-go detach from whoever started them and would
 * outlive both their parent and a deleted namespace, so the box never relies on process trees: it asks the kernel
 * which processes live in the namespace (`ip netns pids`) until none is left.
 */

const SWEEP_ROUNDS = 20;
const SWEEP_PAUSE_MS = 50;
const EXIT_WAIT_MS = 5_000;

const parsePids = (text: string): number[] => text.split('\n').filter((line) => /^\d+$/.test(line)).map(Number);

export async function netnsPids(netns: string): Promise<number[]> {
  try {
    return parsePids((await hostExec.run('ip', ['netns', 'pids', netns])).stdout);
  } catch (error) {
    if (error instanceof CommandError && /No such file|Cannot open|not found|Invalid/i.test(error.stderr)) return [];
    throw error;
  }
}

/** True once the process no longer runs: gone, or a zombie waiting to be reaped. */
export function pidGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state === 'Z' || state === 'X';
  } catch {
    return true;
  }
}

export function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

export class SweepError extends Error {
  override readonly name = 'SweepError';
}

/** SIGKILLs every process in `netns` except `spare`, repeating while new ones appear, and waits until they are gone. */
export async function killNetnsProcesses(netns: string, spare: ReadonlySet<number> = new Set()): Promise<number[]> {
  const killed = new Set<number>();
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    const pids = (await netnsPids(netns)).filter((pid) => !spare.has(pid) && !pidGone(pid));
    if (pids.length === 0) break;
    for (const pid of pids) {
      killQuietly(pid);
      killed.add(pid);
    }
    await sleep(SWEEP_PAUSE_MS);
  }
  await waitGone([...killed], `processes in ${netns}`);
  return [...killed];
}

export async function waitGone(pids: readonly number[], what: string): Promise<void> {
  const deadline = Date.now() + EXIT_WAIT_MS;
  while (pids.some((pid) => !pidGone(pid))) {
    if (Date.now() > deadline) throw new SweepError(`${what} still running after SIGKILL: ${pids.filter((pid) => !pidGone(pid)).join(' ')}`);
    await sleep(SWEEP_PAUSE_MS);
  }
}

/** For the process 'exit' safety net, where nothing asynchronous runs any more. */
export function killNetnsProcessesSync(netns: string): void {
  for (let round = 0; round < SWEEP_ROUNDS; round++) {
    let pids: number[];
    try {
      pids = parsePids(execFileSync('ip', ['netns', 'pids', netns], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    } catch {
      return;
    }
    pids = pids.filter((pid) => !pidGone(pid));
    if (pids.length === 0) return;
    for (const pid of pids) killQuietly(pid);
  }
}

export function deleteNetnsSync(netns: string): void {
  killNetnsProcessesSync(netns);
  try {
    execFileSync('ip', ['netns', 'delete', netns], { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}
