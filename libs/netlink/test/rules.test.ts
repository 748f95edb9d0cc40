import { describe, expect, it } from 'vitest';
import { InvalidSpecError, diffRules, parseRules, ruleBatch } from '../src/index.ts';

// `ip -N -j rule show` output.
const V4 = JSON.stringify([
  { priority: 0, src: 'all', table: '255' },
  { priority: 100, src: 'all', fwmark: '0x40', table: '9027' },
  { priority: 100, src: 'all', fwmark: '0x40', table: '9027' },
  { priority: 101, src: '10.0.0.0', srclen: 8, fwmark: '0x40', fwmask: '0xff00', iif: 'd0', iif_detached: null, table: '9028' },
  { priority: 100, src: 'all', table: '500' },
  { priority: 102, src: 'all', not: null, fwmark: '0x40', table: '9027' },
  { priority: 32766, src: 'all', table: '254' },
]);
const ownership = { priorities: [100, 101, 102], tables: [9027, 9028] };

describe('policy rules', () => {
  const actual = parseRules(V4, 4);

  it('plans nothing when the owned rules match, removing a kernel duplicate and unmodelled variants', () => {
    const diff = diffRules(
      [
        { priority: 100, fwmark: 0x40, table: 9027 },
        { priority: 101, from: '10.1.2.3/8', fwmark: 0x40, fwmask: 0xff00, iif: 'd0', table: 9028 },
      ],
      actual,
      ownership,
    );
    expect(diff.add).toEqual([]);
    expect(diff.remove.map((r) => r.key)).toEqual([
      'ipv4 prio 100 fwmark 0x40/0xffffffff lookup 9027',
      'ipv4 prio 102 fwmark 0x40/0xffffffff lookup 9027 not=null',
    ]);
    expect(ruleBatch(diff, 4)).toEqual([
      'rule del priority 100 fwmark 0x40/0xffffffff lookup 9027',
      'rule del priority 102 fwmark 0x40/0xffffffff lookup 9027',
    ]);
  });

  it('never owns rules of other priorities or tables', () => {
    const diff = diffRules([], actual, ownership);
    expect(diff.remove.every((r) => r.table === 9027 || r.table === 9028)).toBe(true);
    expect(diff.remove).toHaveLength(4);
  });

  it('splits families into separate batches and validates ownership', () => {
    const diff = diffRules([{ priority: 100, fwmark: 0x40, table: 9027, family: 6 }], [], ownership);
    expect(ruleBatch(diff, 4)).toEqual([]);
    expect(ruleBatch(diff, 6)).toEqual(['rule add priority 100 fwmark 0x40/0xffffffff lookup 9027']);
    expect(() => diffRules([{ priority: 99, table: 9027 }], [], ownership)).toThrow(InvalidSpecError);
    expect(() => diffRules([{ priority: 100, table: 9027, from: '10.0.0.0/8', to: '2001:db8::/32' }], [], ownership)).toThrow(InvalidSpecError);
  });
});
