import { describe, expect, it } from 'vitest';
import { ConfigError, durationFlag, helpText, intFlag, parseDuration, parseFlags } from '../src/index.ts';

const flags = {
  name: { type: 'string', description: 'a name', default: 'x' },
  'leader-elect': { type: 'boolean', description: 'elect', default: true },
} as const;

describe('flags', () => {
  it('takes Kubernetes-style --flag=false for booleans', () => {
    expect(parseFlags('p', 's', flags, ['--leader-elect=false', '--name=y']).values).toEqual({ name: 'y', 'leader-elect': false });
    expect(parseFlags('p', 's', flags, []).values).toEqual({ name: 'x', 'leader-elect': true });
  });

  it('rejects unknown flags with a typed error', () => {
    expect(() => parseFlags('p', 's', flags, ['--nope'])).toThrow(ConfigError);
  });

  it('parses durations and integers', () => {
    expect(durationFlag('d', '15s', 0)).toBe(15_000);
    expect(durationFlag('d', '500ms', 0)).toBe(500);
    expect(durationFlag('d', '2m', 0)).toBe(120_000);
    expect(() => durationFlag('d', '15', 0)).toThrow(ConfigError);
    expect(intFlag('i', '7', 0)).toBe(7);
    expect(() => intFlag('i', '-1', 0)).toThrow(ConfigError);
  });

  it('prints every flag in --help', () => {
    const text = helpText('p', 'summary', flags);
    expect(text).toContain('--name=VALUE');
    expect(text).toContain('--leader-elect');
    expect(text).toContain('(default "x")');
  });
});

describe('strict arguments', () => {
  it.each([
    { argv: ['--leader-elect', 'false'], message: /stray argument "false" after --leader-elect: boolean flags take the form --leader-elect=false/ },
    { argv: ['extra'], message: /unexpected argument "extra"; it takes no positional arguments/ },
    { argv: ['--name=y', 'a', 'b'], message: /unexpected argument "a"/ },
  ])('refuses $argv', ({ argv, message }) => {
    expect(() => parseFlags('p', 's', flags, argv)).toThrow(message);
  });

  it('takes only the declared commands, one at most', () => {
    expect(parseFlags('p', 's', flags, ['cleanup'], ['cleanup']).positionals).toEqual(['cleanup']);
    expect(() => parseFlags('p', 's', flags, ['cleanup', 'now'], ['cleanup'])).toThrow(/unexpected argument "now"/);
    expect(() => parseFlags('p', 's', flags, ['clean'], ['cleanup'])).toThrow(/one of the commands cleanup/);
  });

  it('does not report --version as a value', () => {
    expect(parseFlags('p', 's', flags, []).values).not.toHaveProperty('version');
  });
});

describe('Go durations', () => {
  it.each([
    ['0', 0], ['15s', 15_000], ['500ms', 500], ['2m', 120_000], ['1m30s', 90_000], ['1.5h', 5_400_000],
    ['1h2m3s', 3_723_000], ['250us', 0.25], ['.5s', 500], ['1h0m0.5s', 3_600_500],
  ])('%s → %d ms', (text, ms) => {
    expect(parseDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['15', '', '-1s', '1d', '1m 30s', 's', '1.2.3s', '10sm'])('refuses "%s"', (text) => {
    expect(parseDuration(text)).toBeUndefined();
  });
});
