import { describe, expect, it } from 'vitest';
import { atLeast, goVersion, preflight, problems, type PreflightFacts, type PreflightSteps } from '../scripts/preflight.mjs';

/** A machine on which every step can run. */
const fine: PreflightFacts = { root: true, aptGet: true, go: [1, 26], kernelFailure: undefined, home: '/home/u', freeGiB: 100 };
const everything: PreflightSteps = { apt: true, binaries: true, kernel: true, diskGiB: 8 };

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

describe('one sentence per unmet prerequisite', () => {
  it.each<[string, PreflightSteps, Partial<PreflightFacts>, string[]]>([
    ['nothing missing', everything, {}, []],
    ['not root, for the Debian packages', { apt: true }, { root: false }, ['this step needs root (network namespaces, Debian packages): run it as root']],
    ['not root, for the kernel', { kernel: true }, { root: false }, ['this step needs root (network namespaces, Debian packages): run it as root']],
    ['not root does not matter to the Go builds', { binaries: true, diskGiB: 8 }, { root: false }, []],
    ['no apt', { apt: true }, { aptGet: false }, ['apt-get is missing: this needs a Debian or Ubuntu machine, or install the packages listed in the README by hand']],
    ['no apt does not matter without --apt', { binaries: true, kernel: true }, { aptGet: false }, []],
    ['no Go', { binaries: true }, { go: undefined }, ['Go is missing: install Go 1.24 or newer (it builds the pinned upstream binaries the tests run against)']],
    ['a Go older than required', { binaries: true }, { go: [1, 23] }, ['Go 1.23 is too old: install Go 1.24 or newer']],
    ['exactly the required Go', { binaries: true }, { go: [1, 24] }, []],
    ['no Go does not matter without --binaries', { apt: true, kernel: true }, { go: undefined }, []],
    ['the kernel lacking vxlan', { kernel: true }, { kernelFailure: 'Error: Unknown device type.' },
      ['the kernel cannot create what the box needs in a network namespace (veth, vxlan, iptables nat): Error: Unknown device type.']],
    ['a kernel failure does not matter without the kernel step', { apt: true, binaries: true }, { kernelFailure: 'Error: Unknown device type.' }, []],
    ['not enough disk', { diskGiB: 8 }, { freeGiB: 2.345 }, ['only 2.3 GiB free under /home/u: the build cache and boxes need about 8 GiB']],
    ['just enough disk', { diskGiB: 8 }, { freeGiB: 8 }, []],
    ['several at once, in order', everything, { root: false, aptGet: false, go: [1, 20], freeGiB: 1 }, [
      'this step needs root (network namespaces, Debian packages): run it as root',
      'apt-get is missing: this needs a Debian or Ubuntu machine, or install the packages listed in the README by hand',
      'Go 1.20 is too old: install Go 1.24 or newer',
      'only 1.0 GiB free under /home/u: the build cache and boxes need about 8 GiB',
    ]],
  ])('%s', (_, steps, facts, expected) => {
    expect(problems(steps, { ...fine, ...facts })).toEqual(expected);
  });
});
