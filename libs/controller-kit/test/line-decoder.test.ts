import { describe, expect, it } from 'vitest';
import { LineDecoder } from '../src/kube-client.ts';

describe('the watch stream line decoder', () => {
  it('decodes a multi-byte character whose bytes arrive in two chunks', () => {
    const line = Buffer.from('{"note":"网关 ✓ 🚀"}\n', 'utf8');
    for (let cut = 1; cut < line.length; cut++) {
      const decoder = new LineDecoder();
      const lines = [...decoder.push(line.subarray(0, cut)), ...decoder.push(line.subarray(cut))];
      expect(lines).toEqual(['{"note":"网关 ✓ 🚀"}']);
    }
  });

  it('splits lines across and within chunks and skips blank ones', () => {
    const decoder = new LineDecoder();
    expect(decoder.push(Buffer.from('{"a":1}\n\n{"b"'))).toEqual(['{"a":1}']);
    expect(decoder.push(Buffer.from(':2}\n{"c":3}\n'))).toEqual(['{"b":2}', '{"c":3}']);
  });
});
