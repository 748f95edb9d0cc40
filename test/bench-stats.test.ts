import { describe, expect, it } from 'vitest';
import { judge } from '../bench/report.ts';
import { EmptySampleError, alternate, pairedDifferences, pairedRatios, samplesNeeded, summarize, verdict } from '../bench/stats.ts';

describe('summarize', () => {
  it.each([
    { samples: [5], median: 5, low: 5, high: 5 },
    { samples: [3, 1, 2], median: 2, low: 1, high: 3 },
    { samples: [4, 1, 3, 2], median: 2.5, low: 1, high: 4 },
    // n = 10: the 95 % interval of the median is [x(2), x(9)] with coverage 0.979.
    { samples: [10, 1, 9, 2, 8, 3, 7, 4, 6, 5], median: 5.5, low: 2, high: 9 },
  ])('$samples → median $median, interval [$low, $high]', ({ samples, median, low, high }) => {
    const s = summarize(samples);
    expect(s).toMatchObject({ n: samples.length, median, low, high, min: Math.min(...samples), max: Math.max(...samples) });
  });

  it('gives the exact coverage of the order-statistic interval', () => {
    expect(summarize([1, 2, 3, 4, 5, 6]).coverage).toBeCloseTo(1 - 2 / 64, 6);
    expect(summarize([1, 2, 3, 4, 5]).coverage).toBeCloseTo(1 - 2 / 32, 6);
    expect(summarize(Array.from({ length: 10 }, (_, i) => i)).coverage).toBeCloseTo(0.978515625, 6);
  });

  it('ignores non-finite samples and refuses an empty set', () => {
    expect(summarize([NaN, 2, Infinity, 4]).median).toBe(3);
    expect(() => summarize([])).toThrow(EmptySampleError);
    expect(() => summarize([NaN])).toThrow(EmptySampleError);
  });

  it('needs six samples for a 95 % interval', () => {
    expect(samplesNeeded()).toBe(6);
    expect(samplesNeeded(0.99)).toBe(8);
  });
});

describe('verdict', () => {
  const ge1 = { op: '>=', value: 1 } as const;
  const le1 = { op: '<=', value: 1 } as const;
  it.each([
    { name: 'whole interval above a >= goal', samples: [1.2, 1.3, 1.25, 1.4, 1.1, 1.3], goal: ge1, expected: 'met' },
    { name: 'whole interval below a >= goal', samples: [0.7, 0.8, 0.75, 0.9, 0.85, 0.8], goal: ge1, expected: 'missed' },
    { name: 'interval straddles the goal', samples: [0.9, 1.1, 0.95, 1.05, 1.2, 0.8], goal: ge1, expected: 'inconclusive' },
    { name: 'too few samples for 95 %', samples: [2, 2, 2, 2, 2], goal: ge1, expected: 'inconclusive' },
    { name: '<= goal met', samples: [0.2, 0.3, 0.4, 0.2, 0.5, 0.3], goal: le1, expected: 'met' },
    { name: 'one outlier beyond the interval does not flip it', samples: [0.2, 0.3, 0.4, 0.2, 0.5, 0.3, 0.3, 0.2, 0.4, 9], goal: le1, expected: 'met' },
    { name: 'two outliers do', samples: [0.2, 0.3, 0.4, 0.2, 0.5, 0.3, 0.3, 0.2, 8, 9], goal: le1, expected: 'inconclusive' },
  ])('$name → $expected', ({ samples, goal, expected }) => {
    expect(verdict(summarize(samples), goal)).toBe(expected);
  });
});

describe('judge', () => {
  it('never calls a single noisy figure met', () => {
    expect(judge({ what: 'x', unit: 'ms', value: 0.1, goal: { op: '<=', value: 1 } }).verdict).toBe('inconclusive');
  });
  it('judges exact counts directly', () => {
    expect(judge({ what: 'writes', unit: '', value: 0, exact: true, goal: { op: '<=', value: 0 } }).verdict).toBe('met');
    expect(judge({ what: 'writes', unit: '', value: 3, exact: true, goal: { op: '<=', value: 0 } }).verdict).toBe('missed');
  });
  it('shows median, range and count for samples', () => {
    expect(judge({ what: 'r', unit: 'x', samples: [1, 2, 3] }).shown).toBe('2 [1..3] n=3');
  });
});

describe('alternate', () => {
  it('reverses the order every other round and aligns samples by round', async () => {
    const calls: string[] = [];
    let clock = 0;
    const path = (name: string) => async () => {
      calls.push(name);
      return clock++;
    };
    const samples = await alternate({ a: path('a'), b: path('b'), c: path('c') }, 3);
    expect(calls).toEqual(['a', 'b', 'c', 'c', 'b', 'a', 'a', 'b', 'c']);
    expect(samples).toEqual({ a: [0, 5, 6], b: [1, 4, 7], c: [2, 3, 8] });
  });
});

describe('paired comparisons', () => {
  it('pairs by round and stops at the shorter list', () => {
    expect(pairedRatios([2, 6, 9], [1, 3])).toEqual([2, 2]);
    expect(pairedDifferences([5, 7], [1, 2, 3])).toEqual([4, 5]);
  });
});
