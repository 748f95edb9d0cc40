import { describe, expect, it } from 'vitest';
import { InvalidSpecError, normalizeInterfaceAddress, normalizeIp, normalizePrefix, withHostPrefix } from '../src/index.ts';

describe('normalizeIp', () => {
  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0:1:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0:0:1:0:0:0:0', '2001:0:0:1::'],
    ['1:0:2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['::', '::'],
    ['::1', '::1'],
    ['::ffff:10.1.2.3', '::ffff:10.1.2.3'],
    ['::ffff:a01:203', '::ffff:10.1.2.3'],
    ['::10.1.2.3', '::10.1.2.3'],
    ['64:ff9b::10.1.2.3', '64:ff9b::a01:203'],
    ['fe80::1:2:3:4', 'fe80::1:2:3:4'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeIp(input)).toBe(expected);
  });

  it.each(['10.0.0', '10.0.0.256', '1::2::3', '1:2:3:4:5:6:7:8:9', 'fe80::1%eth0', 'x', '', '1.2.3.4.5', '::ffff:1.2.3'])('rejects %s', (input) => {
    expect(() => normalizeIp(input)).toThrow(InvalidSpecError);
  });
});

describe('normalizePrefix', () => {
  it('clears host bits and adds host prefix lengths', () => {
    expect(normalizePrefix('10.1.2.3/16')).toBe('10.1.0.0/16');
    expect(normalizePrefix('10.1.2.3')).toBe('10.1.2.3/32');
    expect(normalizePrefix('0.0.0.0/0')).toBe('0.0.0.0/0');
    expect(normalizePrefix('255.255.255.255/1')).toBe('128.0.0.0/1');
    expect(normalizePrefix('2001:db8:ffff:ffff::1/35')).toBe('2001:db8:e000::/35');
    expect(normalizePrefix('2001:DB8::1')).toBe('2001:db8::1/128');
    expect(normalizePrefix('::/0')).toBe('::/0');
  });

  it('rejects lengths beyond the family', () => {
    expect(() => normalizePrefix('10.0.0.0/33')).toThrow(InvalidSpecError);
    expect(() => normalizePrefix('::/129')).toThrow(InvalidSpecError);
    expect(() => normalizePrefix('10.0.0.0/x')).toThrow(InvalidSpecError);
  });

  it('keeps host bits of interface addresses', () => {
    expect(normalizeInterfaceAddress('10.1.2.3/16')).toBe('10.1.2.3/16');
    expect(normalizeInterfaceAddress('2001:DB8::1/64')).toBe('2001:db8::1/64');
    expect(normalizeInterfaceAddress('10.1.2.3')).toBe('10.1.2.3/32');
  });

  it('restores the host prefix the kernel omits', () => {
    expect(withHostPrefix('10.1.2.3')).toBe('10.1.2.3/32');
    expect(withHostPrefix('2001:db8::1')).toBe('2001:db8::1/128');
    expect(withHostPrefix('10.1.0.0/16')).toBe('10.1.0.0/16');
  });
});
