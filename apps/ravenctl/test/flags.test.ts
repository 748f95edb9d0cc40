import { describe, expect, it } from 'vitest';
import { UsageError } from '../src/exit.ts';
import { seconds } from '../src/flags.ts';

describe('time flags', () => {
  it.each([
    [undefined, 120],
    ['90', 90],
    ['2.5', 2.5],
    ['90s', 90],
    ['1m30s', 90],
    ['1.5h', 5400],
    ['500ms', 0.5],
  ])('%j is %d s', (value, expected) => {
    expect(seconds('timeout', value, 120)).toBe(expected);
  });

  it.each(['soon', '-5', '1d', '', '5 s', '0', '0s'])('%j is a usage error', (value) => {
    expect(() => seconds('timeout', value, 120)).toThrow(UsageError);
  });

  it('takes zero only where zero means something', () => {
    expect(seconds('max-clock-skew', '0', 5, { allowZero: true })).toBe(0);
    expect(seconds('max-clock-skew', '0s', 5, { allowZero: true })).toBe(0);
  });
});
