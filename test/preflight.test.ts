import { describe, expect, it } from 'vitest';
import { atLeast, goVersion, preflight } from '../scripts/preflight.mjs';

describe('preflight', () => {
  it.each([
    ['go version go1.26.8 linux/amd64', [1, 26]],
    ['go version go1.24.0 linux/arm64', [1, 24]],
    ['go version devel go1.27-abc linux/amd64', [1, 27]],
    ['something else', undefined],
  ])('reads "%s"', (text, expected) => {
    expect(goVersion(text)).toEqual(expected);
  });

  it.each([
    [[1, 24], [1, 24], true], [[1, 26], [1, 24], true], [[2, 0], [1, 24], true], [[1, 23], [1, 24], false], [[0, 99], [1, 24], false],
  ])('%j at least %j: %s', (have, want, expected) => {
    expect(atLeast(have as number[], want as number[])).toBe(expected);
  });

  it('names a disk shortage in one sentence', () => {
    const [problem, ...rest] = preflight({ diskGiB: 1e9 });
    expect(rest).toEqual([]);
    expect(problem).toMatch(/^only [\d.]+ GiB free under .+: the build cache and boxes need about 1000000000 GiB$/);
  });
});
