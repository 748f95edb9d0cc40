import { describe, expect, it } from 'vitest';
import { PortListError, formatPortList, parsePortList } from '../src/index.ts';

describe('parsePortList', () => {
  it.each([
    ['10255,9445', [10255, 9445]],
    ['10250', [10250]],
    [' 1 , 65535 ', [1, 65535]],
    ['80,80,443', [80, 443]],
    ['', []],
    [undefined, []],
  ])('parses %j', (input, expected) => {
    expect(parsePortList(input)).toEqual(expected);
  });

  it.each(['10255,abc', '0', '70000', '10255,', ',80', '80;443', '-1', '1e3'])('rejects %j', (input) => {
    expect(() => parsePortList(input)).toThrow(PortListError);
  });

  it('formats back to the wire format', () => {
    expect(formatPortList(parsePortList('10255,9445'))).toBe('10255,9445');
  });
});
