import { readFileSync } from 'node:fs';
import { summarize, verdict, type Goal, type Verdict } from './stats.ts';

/**
 * A benchmark figure. `samples` (one per alternated round) give a median, its spread and a confidence interval;
 * `exact` marks a count that has no noise (API writes, lost packets). A goal is judged only from those: a single
 * noisy measurement is reported, never called met.
 */
export interface Row {
  what: string;
  unit: string;
  samples?: readonly number[];
  value?: number;
  exact?: boolean;
  goal?: Goal;
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(Math.abs(x) < 10 ? 3 : 1));

export function judge(row: Row): { shown: string; verdict?: Verdict } {
  if (row.samples && row.samples.length > 0) {
    const s = summarize(row.samples);
    const shown = s.n === 1 ? fmt(s.median) : `${fmt(s.median)} [${fmt(s.min)}..${fmt(s.max)}] n=${s.n}`;
    return { shown, verdict: row.goal ? verdict(s, row.goal) : undefined };
  }
  const value = row.value ?? NaN;
  if (!row.goal) return { shown: fmt(value) };
  if (!row.exact) return { shown: fmt(value), verdict: 'inconclusive' };
  const ok = row.goal.op === '<=' ? value <= row.goal.value : value >= row.goal.value;
  return { shown: fmt(value), verdict: ok ? 'met' : 'missed' };
}

/** Prints figure, spread and verdict. The verdict is "inconclusive" whenever the spread straddles the goal. */
export function printReport(title: string, rows: Row[]): void {
  console.log(`\n${title}  (median [min..max] n=rounds; verdict from the 95 % interval of the median)`);
  console.log(`${'what'.padEnd(56)} ${'measured'.padStart(30)}   goal`);
  for (const row of rows) {
    const { shown, verdict: v } = judge(row);
    const goal = row.goal ? `${row.goal.op} ${row.goal.value} ${row.unit}  ${v === 'missed' ? 'MISSED' : v}` : '';
    console.log(`${row.what.padEnd(56)} ${`${shown} ${row.unit}`.padStart(30)}   ${goal}`);
  }
}

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{([^}]*)\})? ([^ ]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries((m[3] ?? '').split(',').filter(Boolean).map((kv) => {
      const [k, v] = kv.split('=');
      return [k, v?.replace(/^"|"$/g, '')];
    }));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) total += Number(m[4]);
  }
  return total;
}

export function peakRssMB(pid: number): number {
  const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
  return kb / 1024;
}
