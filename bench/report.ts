import { readFileSync } from 'node:fs';

/** A small table printer for benchmark results: figure, goal, verdict. */
export interface Row {
  what: string;
  value: number;
  unit: string;
  goal?: { op: '<=' | '>='; value: number };
}

export function printReport(title: string, rows: Row[]): void {
  console.log(`\n${title}`);
  console.log(`${'what'.padEnd(48)} ${'measured'.padStart(14)}   goal`);
  for (const r of rows) {
    const measured = `${Number.isInteger(r.value) ? r.value : r.value.toFixed(r.value < 10 ? 3 : 1)} ${r.unit}`;
    const goal = r.goal ? `${r.goal.op} ${r.goal.value} ${r.unit}  ${(r.goal.op === '<=' ? r.value <= r.goal.value : r.value >= r.goal.value) ? 'met' : 'MISSED'}` : '';
    console.log(`${r.what.padEnd(48)} ${measured.padStart(14)}   ${goal}`);
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
