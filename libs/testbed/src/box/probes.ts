import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { CommandError } from '@raven/netlink';
import type { BoxHost } from './hosts.ts';

export interface PingOptions {
  from: BoxHost;
  to: BoxHost | string;
  /** Echo requests to send; default 3. */
  count?: number;
  /** Default 200 ms. */
  intervalMs?: number;
  /** How long to wait for the last reply; default 1000 ms. */
  timeoutMs?: number;
  /** ICMP payload bytes (`ping -s`), for MTU probes together with `dontFragment`. */
  size?: number;
  dontFragment?: boolean;
  /** Also report the longest silence between two replies (`ping -D` per-reply timestamps): the outage of a failover. */
  measureGaps?: boolean;
}

export interface PingResult {
  from: string;
  to: string;
  sent: number;
  received: number;
  lossPercent: number;
  /** Undefined when nothing came back. */
  rttAvgMs?: number;
  /** Why ping could not even send (`Network is unreachable`, ...). */
  error?: string;
  /** With `measureGaps`: the longest run of consecutive unanswered echoes, times the interval, in ms. */
  longestGapMs?: number;
  /** With `measureGaps`: when (ms epoch) the last reply before and the first reply after that run arrived. */
  gapBetween?: [number | undefined, number | undefined];
}

export type PingStats = Omit<PingResult, 'from' | 'to' | 'error'>;

/** Parses iputils ping's summary (`-q` output); undefined when there is none. */
export function parsePingSummary(output: string): PingStats | undefined {
  const summary = /(\d+) packets transmitted, (\d+) received,(?: \+\d+ duplicates,)?(?: \+\d+ errors,)? ([\d.]+)% packet loss/.exec(output);
  if (!summary) return undefined;
  const rtt = /rtt min\/avg\/max\/mdev = [\d.]+\/([\d.]+)\//.exec(output);
  return {
    sent: Number(summary[1]),
    received: Number(summary[2]),
    lossPercent: Number(summary[3]),
    ...(rtt ? { rttAvgMs: Number(rtt[1]) } : {}),
  };
}

/**
 * The longest run of consecutive echo sequence numbers (1..sent) without a reply, from `ping -D` output, with the
 * arrival times of the replies around it.
 */
export function longestLossRun(output: string, sent: number): { length: number; between: [number | undefined, number | undefined] } {
  const answeredAt = new Map([...output.matchAll(/^(?:\[(\d+\.\d+)\] )?\d+ bytes from .*icmp_seq=(\d+)/gm)].map((m) => [Number(m[2]), m[1] ? Number(m[1]) * 1000 : 0]));
  let best = { length: 0, end: 0 };
  let run = 0;
  for (let seq = 1; seq <= sent; seq++) {
    run = answeredAt.has(seq) ? 0 : run + 1;
    if (run > best.length) best = { length: run, end: seq };
  }
  const before = answeredAt.get(best.end - best.length);
  const after = answeredAt.get(best.end + 1);
  return { length: best.length, between: [before, after] };
}

/** Pings with the real `ping` (iputils-ping) from inside `from`. A host that does not answer is a result, not an error. */
export async function ping(opts: PingOptions): Promise<PingResult> {
  const to = typeof opts.to === 'string' ? opts.to : opts.to.ip;
  const count = opts.count ?? 3;
  const args = [
    '-n', ...(opts.measureGaps ? ['-D'] : ['-q']), '-c', String(count), '-i', String((opts.intervalMs ?? 200) / 1000), '-W', String((opts.timeoutMs ?? 1000) / 1000),
    ...(opts.size !== undefined ? ['-s', String(opts.size)] : []),
    ...(opts.dontFragment ? ['-M', 'do'] : []),
    to,
  ];
  const base = { from: opts.from.label, to };
  let output: string;
  let error: string | undefined;
  try {
    output = (await opts.from.exec('ping', args)).stdout;
  } catch (err) {
    if (!(err instanceof CommandError)) throw err;
    output = err.stdout;
    error = err.stderr.trim().split('\n')[0];
  }
  const stats = parsePingSummary(output);
  if (!stats) return { ...base, sent: 0, received: 0, lossPercent: 100, error: error ?? 'ping printed no summary' };
  const run = opts.measureGaps ? longestLossRun(output, stats.sent) : undefined;
  const gaps = run ? { longestGapMs: run.length * (opts.intervalMs ?? 200), gapBetween: run.between } : {};
  return { ...base, ...stats, ...gaps, ...(error && stats.received === 0 ? { error } : {}) };
}

export interface ConnectivityPair {
  from: BoxHost;
  to: BoxHost | string;
  /** Whether the pair should reach each other; fills in `ok`. */
  expect?: boolean;
}

export interface ConnectivityRow extends PingResult {
  /** The target's label when it is a box host. */
  toLabel: string;
  reachable: boolean;
  expected?: boolean;
  /** `reachable === expected`; undefined without an expectation. */
  ok?: boolean;
}

export interface MatrixOptions extends Omit<PingOptions, 'from' | 'to'> {
  /** Pings in flight at once; default 8. */
  concurrency?: number;
}

/** Pings every pair (a bounded number at a time) and returns one row per pair, in the pairs' order. */
export async function connectivityMatrix(pairs: readonly ConnectivityPair[], opts: MatrixOptions = {}): Promise<ConnectivityRow[]> {
  const { concurrency = 8, ...pingOpts } = opts;
  const rows: ConnectivityRow[] = new Array<ConnectivityRow>(pairs.length);
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < pairs.length; i = next++) {
      const pair = pairs[i]!;
      const result = await ping({ count: 2, ...pingOpts, from: pair.from, to: pair.to });
      const reachable = result.received > 0;
      rows[i] = {
        ...result,
        toLabel: typeof pair.to === 'string' ? pair.to : pair.to.label,
        reachable,
        ...(pair.expect === undefined ? {} : { expected: pair.expect, ok: reachable === pair.expect }),
      };
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, pairs.length)) }, worker));
  return rows;
}

/** A fixed-width table of connectivity rows, for the demo and for test failure messages. */
export function formatConnectivity(rows: readonly ConnectivityRow[]): string {
  const cells = rows.map((row) => [
    row.from,
    row.toLabel === row.to ? row.to : `${row.toLabel} (${row.to})`,
    `${row.received}/${row.sent}`,
    row.rttAvgMs === undefined ? '-' : `${row.rttAvgMs.toFixed(2)} ms`,
    row.expected === undefined ? '' : row.ok ? 'ok' : `UNEXPECTED (wanted ${row.expected ? 'reachable' : 'unreachable'})`,
  ]);
  const header = ['from', 'to', 'replies', 'rtt avg', 'verdict'];
  const widths = header.map((title, col) => Math.max(title.length, ...cells.map((cell) => cell[col]!.length)));
  const line = (cell: string[]) => cell.map((text, col) => text.padEnd(widths[col]!)).join('  ').trimEnd();
  return [line(header), ...cells.map(line)].join('\n');
}

export interface CaptureOptions {
  at: BoxHost;
  iface: string;
  /** A pcap filter expression, e.g. `udp port 4500`. */
  filter?: string;
  /** Stop after this many packets; default 10. */
  count?: number;
  /** Stop after this long anyway; default 5000 ms. */
  timeoutMs?: number;
}

export interface Capture {
  /** tcpdump's one-line packet summaries; resolves when `count` packets were seen, the time is up, or on `stop()`. */
  readonly done: Promise<string[]>;
  stop(): Promise<string[]>;
}

export class CaptureError extends Error {
  override readonly name = 'CaptureError';
}

/** Starts tcpdump on an interface inside a host; resolves once it listens, so traffic sent afterwards is seen. */
export async function capture(opts: CaptureOptions): Promise<Capture> {
  const count = opts.count ?? 10;
  const args = ['-n', '-l', '--immediate-mode', '-i', opts.iface, '-c', String(count), ...(opts.filter ? [opts.filter] : [])];
  const child = spawn(opts.at.wrap[0]!, [...opts.at.wrap.slice(1), 'tcpdump', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const where = `tcpdump on ${opts.at.label} ${opts.iface}`;
  const lines: string[] = [];
  let stderr = '';
  createInterface({ input: child.stdout }).on('line', (line) => lines.push(line));
  const done = new Promise<string[]>((resolve) => child.once('close', () => resolve(lines)));
  const stop = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    return done;
  };
  const listening = new Promise<void>((resolve, reject) => {
    const startup = setTimeout(() => reject(new CaptureError(`${where} did not start within 5 s: ${stderr.trim()}`)), 5_000);
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      if (stderr.includes('listening on')) {
        clearTimeout(startup);
        resolve();
      }
    });
    child.once('error', (error) => reject(new CaptureError(`${where}: ${error.message}`)));
    child.once('close', () => reject(new CaptureError(`${where} exited: ${stderr.trim()}`)));
  });
  try {
    await listening;
  } catch (error) {
    await stop();
    throw error;
  }
  const timer = setTimeout(() => void stop(), opts.timeoutMs ?? 5_000);
  void done.then(() => clearTimeout(timer));
  return { done, stop };
}
