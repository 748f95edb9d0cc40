// Statistics for benchmarks on a shared, noisy machine: compared paths run alternately (A B B A ...), figures are
// medians with their spread, and a goal is called met or missed only when a distribution-free confidence interval
// of the median lies wholly on one side of it. Otherwise the verdict is "inconclusive".

export type GoalOp = '<=' | '>=';
export interface Goal {
  op: GoalOp;
  value: number;
}
export type Verdict = 'met' | 'missed' | 'inconclusive';

export interface Summary {
  n: number;
  median: number;
  min: number;
  max: number;
  /** Confidence interval of the median from order statistics (no assumption about the distribution). */
  low: number;
  high: number;
  /** The interval's real coverage (order statistics give discrete levels), e.g. 0.979 for n = 10. */
  coverage: number;
}

export class EmptySampleError extends Error {
  override readonly name = 'EmptySampleError';
}

function binomialCdf(k: number, n: number): number {
  // P(X <= k) for X ~ Binomial(n, 1/2), exact for the sample sizes benchmarks use.
  let term = 0.5 ** n;
  let sum = 0;
  for (let i = 0; i <= k; i++) {
    sum += term;
    term = (term * (n - i)) / (i + 1);
  }
  return sum;
}

/**
 * Median, range and a confidence interval for the median: the interval [x(k), x(n+1-k)] of order statistics with the
 * largest k whose coverage 1 - 2 P(X < k) is still at least `confidence`. With too few samples for that level the
 * interval is the whole range and its coverage says how little it means.
 */
export function summarize(samples: readonly number[], confidence = 0.95): Summary {
  const xs = samples.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) throw new EmptySampleError('no finite samples to summarize');
  const median = n % 2 === 1 ? xs[(n - 1) / 2]! : (xs[n / 2 - 1]! + xs[n / 2]!) / 2;
  let k = 1;
  while (k + 1 <= n + 1 - (k + 1) && 1 - 2 * binomialCdf(k, n) >= confidence) k++;
  const coverage = 1 - 2 * binomialCdf(k - 1, n);
  return { n, median, min: xs[0]!, max: xs[n - 1]!, low: xs[k - 1]!, high: xs[n - k]!, coverage };
}

/** Met when the whole interval satisfies the goal, missed when none of it does, inconclusive when it straddles. */
export function verdict(summary: Pick<Summary, 'low' | 'high' | 'coverage'>, goal: Goal, confidence = 0.95): Verdict {
  if (summary.coverage < confidence) return 'inconclusive';
  const ok = (x: number) => (goal.op === '<=' ? x <= goal.value : x >= goal.value);
  if (ok(summary.low) && ok(summary.high)) return 'met';
  if (!ok(summary.low) && !ok(summary.high)) return 'missed';
  return 'inconclusive';
}

/** The fewest samples whose order-statistic interval reaches `confidence` (6 for 95 %). */
export function samplesNeeded(confidence = 0.95): number {
  for (let n = 1; n < 64; n++) if (summarize(Array.from({ length: n }, (_, i) => i), confidence).coverage >= confidence) return n;
  return 64;
}

/**
 * Runs every path once per round, reversing the order on odd rounds (A B C, C B A, ...), so that drift in the
 * machine's load hits all paths alike. Returns each path's samples, index-aligned by round.
 */
export async function alternate<K extends string, T = number>(
  paths: Record<K, () => Promise<T>>,
  rounds: number,
  onRound?: (round: number, values: Record<K, T>) => void,
): Promise<Record<K, T[]>> {
  const names = Object.keys(paths) as K[];
  const samples = Object.fromEntries(names.map((name) => [name, [] as T[]])) as Record<K, T[]>;
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    const values = {} as Record<K, T>;
    for (const name of order) values[name] = await paths[name]();
    for (const name of names) samples[name].push(values[name]);
    onRound?.(round, values);
  }
  return samples;
}

/** Per-round ratios of two index-aligned sample lists: the paired comparison that cancels slow drift. */
export function pairedRatios(numerator: readonly number[], denominator: readonly number[]): number[] {
  return numerator.slice(0, denominator.length).map((x, i) => x / denominator[i]!);
}

/** Per-round differences (e.g. added latency over a direct path). */
export function pairedDifferences(minuend: readonly number[], subtrahend: readonly number[]): number[] {
  return minuend.slice(0, subtrahend.length).map((x, i) => x - subtrahend[i]!);
}
