import { describe, expect, it } from 'vitest';
import { parseHead } from '../src/head.ts';
import { RequestFramer, type Segment } from '../src/requests.ts';

/** Feeds `text` in pieces of `step` bytes; returns the heads found (their request lines) and the bytes passed on. */
function frame(first: string, text: string, step = text.length): { heads: string[]; passed: string } {
  const framer = new RequestFramer(64 * 1024);
  framer.begin(parseHead(first));
  const segments: Segment[] = [];
  const bytes = Buffer.from(text, 'latin1');
  for (let i = 0; i < bytes.length; i += step) segments.push(...framer.push(bytes.subarray(i, i + step)));
  return {
    heads: segments.flatMap((s) => (s.kind === 'head' ? [`${s.request.method} ${s.request.url}`] : [])),
    passed: segments.map((s) => (s.kind === 'head' ? `[${s.request.method}]` : s.data.toString('latin1'))).join(''),
  };
}

const GET = 'GET /a HTTP/1.1\r\nHost: n:10250';
const next = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: other:10250\r\n${extra}\r\n`;

describe('RequestFramer: every request on a keep-alive connection is seen', () => {
  it.each([1, 3, 1000])('bodiless, Content-Length and chunked bodies, in pieces of %i bytes', (step) => {
    const body = 'POST /b HTTP/1.1\r\nHost: x:1\r\nContent-Length: 11\r\n\r\nGET /fake\r\n'
      + 'PUT /c HTTP/1.1\r\nHost: x:1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nGET /\r\n0\r\nTrailer: v\r\n\r\n'
      + next('/d');
    const { heads, passed } = frame(GET, body, step);
    expect(heads).toEqual(['POST /b', 'PUT /c', 'GET /d']);
    expect(passed).toBe('[POST]GET /fake\r\n[PUT]5;ext=1\r\nGET /\r\n0\r\nTrailer: v\r\n\r\n[GET]');
  });

  it('the first request\'s own body is skipped, not taken for a head', () => {
    expect(frame('POST /a HTTP/1.1\r\nHost: n:1\r\nContent-Length: 18', `GET /smuggled HTTP${next('/b')}`).heads).toEqual(['GET /b']);
  });

  it('after a protocol switch nothing more is parsed', () => {
    const { heads, passed } = frame('GET /exec HTTP/1.1\r\nHost: n:1\r\nUpgrade: websocket', `\x81\x05hello${next('/not-a-request')}`);
    expect(heads).toEqual([]);
    expect(passed).toContain('not-a-request');
  });

  it('refuses what it cannot frame', () => {
    expect(() => frame('POST / HTTP/1.1\r\nHost: n:1\r\nContent-Length: -1', '')).toThrow(/Content-Length/);
    expect(() => frame('POST / HTTP/1.1\r\nHost: n:1\r\nTransfer-Encoding: gzip', '')).toThrow(/chunked/);
    expect(() => frame('POST / HTTP/1.1\r\nHost: n:1\r\nTransfer-Encoding: chunked', 'zz\r\n')).toThrow(/chunk size/);
    expect(() => frame(GET, `GET / HTTP/1.1\r\nX: ${'a'.repeat(70_000)}`)).toThrow(/larger than/);
  });
});
