import { isIP } from 'node:net';
import { PROBE_PORT, ProbeInputError, type ProbeSite } from './probes.ts';

/**
 * `ravenctl benchmark` as pure functions: the client Pod's script (pings for latency, then parallel HTTP downloads of
 * zeros from the responder for throughput, timed by the Pod's own clock) and the parsing of what it reports.
 */

export interface BenchmarkPlan {
  address: string;
  sizeMiB: number;
  streams: number;
  pings: number;
  timeoutSeconds: number;
}

export function benchmarkScript(plan: BenchmarkPlan): string {
  if (isIP(plan.address) === 0) throw new ProbeInputError(`${JSON.stringify(plan.address)} is not an IP address`);
  for (const [name, value] of Object.entries({ sizeMiB: plan.sizeMiB, streams: plan.streams, pings: plan.pings, timeoutSeconds: plan.timeoutSeconds })) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new ProbeInputError(`${name} must be a positive integer, got ${value}`);
  }
  const host = isIP(plan.address) === 6 ? `[${plan.address}]` : plan.address;
  const perStream = Math.max(1, Math.floor(plan.sizeMiB / plan.streams));
  return [
    'set +e',
    `p=$(ping -c ${plan.pings} -i 0.2 -W 2 ${plan.address} 2>&1 | tail -n 1 | tr -cd 'A-Za-z0-9./=: %-')`,
    // /proc/uptime: centiseconds, enough for transfers of seconds (busybox's date has no sub-second format).
    "t0=$(cut -d ' ' -f 1 /proc/uptime)",
    `i=0; while [ $i -lt ${plan.streams} ]; do (timeout ${plan.timeoutSeconds} wget -q -O - "http://${host}:${PROBE_PORT}/cgi-bin/zero?${perStream}" | wc -c > /tmp/bytes.$i) & i=$((i+1)); done`,
    'wait',
    "t1=$(cut -d ' ' -f 1 /proc/uptime)",
    '{ echo "ping $p"; echo "time $t0 $t1"; for f in /tmp/bytes.*; do echo "bytes $(cat $f)"; done; } > /dev/termination-log',
    'echo "raven-probe $NODE_NAME done"',
  ].join('\n');
}

export interface BenchmarkResult {
  from: ProbeSite;
  to: ProbeSite;
  streams: number;
  bytes: number;
  expectedBytes: number;
  seconds: number;
  mbitPerSecond: number;
  rttMs?: { min: number; avg: number; max: number };
  pingLine: string;
  /** Set when the transfer was short or the report unreadable. */
  problem?: string;
  relayedVia?: string;
}

export function parseBenchmark(message: string, plan: BenchmarkPlan, from: ProbeSite, to: ProbeSite): BenchmarkResult {
  const lines = message.split('\n').map((l) => l.trim());
  const pingLine = lines.find((l) => l.startsWith('ping '))?.slice(5) ?? '';
  const rtt = /min\/avg\/max = ([\d.]+)\/([\d.]+)\/([\d.]+)/.exec(pingLine);
  const time = /^time ([\d.]+) ([\d.]+)$/.exec(lines.find((l) => l.startsWith('time ')) ?? '');
  const bytes = lines.filter((l) => /^bytes \d+$/.test(l)).reduce((sum, l) => sum + Number(l.slice(6)), 0);
  const perStream = Math.max(1, Math.floor(plan.sizeMiB / plan.streams));
  const expectedBytes = perStream * plan.streams * 1024 * 1024;
  const seconds = time ? Number(time[2]) - Number(time[1]) : 0;
  const result: BenchmarkResult = {
    from, to, streams: plan.streams, bytes, expectedBytes, seconds,
    mbitPerSecond: seconds > 0 ? (bytes * 8) / seconds / 1e6 : 0, pingLine,
    ...(rtt ? { rttMs: { min: Number(rtt[1]), avg: Number(rtt[2]), max: Number(rtt[3]) } } : {}),
  };
  if (!time) result.problem = 'the client reported no timing';
  else if (bytes < expectedBytes) result.problem = `received ${bytes} of ${expectedBytes} bytes (a stream failed or timed out)`;
  else if (seconds <= 0) result.problem = 'the transfer took under the clock\'s resolution; use a larger --size';
  if (!rtt) result.problem = [result.problem, `no ping answered (${pingLine || 'no output'})`].filter(Boolean).join('; ');
  return result;
}

export function renderBenchmark(r: BenchmarkResult): string {
  const lines = [
    `from     ${r.from.node} (${r.from.role} of ${r.from.gateway})`,
    `to       ${r.to.node} (${r.to.role} of ${r.to.gateway})${r.relayedVia ? `, relayed via ${r.relayedVia}` : ''}`,
    `latency  ${r.rttMs ? `min ${r.rttMs.min} ms, avg ${r.rttMs.avg} ms, max ${r.rttMs.max} ms` : 'no answer'}`,
    `through  ${r.mbitPerSecond.toFixed(0)} Mbit/s (${(r.bytes / 2 ** 20).toFixed(0)} MiB in ${r.seconds.toFixed(2)} s, ${r.streams} stream${r.streams === 1 ? '' : 's'})`,
  ];
  if (r.problem) lines.push(`PROBLEM  ${r.problem}`);
  return `${lines.join('\n')}\n`;
}
