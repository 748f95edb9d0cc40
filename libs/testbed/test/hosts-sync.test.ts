import { describe, expect, it } from 'vitest';
import { HOSTS_MARKER, hostsWithTunnelNodes } from '../src/box/hosts-sync.ts';

describe('hostsWithTunnelNodes', () => {
  const base = '127.0.0.1 localhost\n';
  it.each([
    ['well-formed lines', '10.96.0.9\tedge-1\n10.96.0.9 edge-2', ['10.96.0.9\tedge-1', '10.96.0.9 edge-2']],
    ['surrounding blanks trimmed', '  10.96.0.9 edge-1  \n\n', ['10.96.0.9 edge-1']],
    ['a second name on a line', '10.96.0.9 edge-1 evil', []],
    ['an injected directive', '10.96.0.9 edge-1\n# comment\nnameserver 1.2.3.4', ['10.96.0.9 edge-1']],
    ['not an address', 'edge-1 10.96.0.9', []],
    ['upper case name', '10.96.0.9 EDGE', []],
    ['empty', '', []],
  ])('%s', (_name, tunnelNodes, lines) => {
    expect(hostsWithTunnelNodes(base, tunnelNodes)).toBe(`${base}${HOSTS_MARKER}\n${lines.join('\n')}\n`);
  });
});
