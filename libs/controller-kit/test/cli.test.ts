import { describe, expect, it } from 'vitest';
import { ConfigError, durationFlag, helpText, intFlag, parseFlags } from '../src/index.ts';

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
