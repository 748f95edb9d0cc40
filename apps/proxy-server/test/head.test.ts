import { EventEmitter } from 'node:events';
import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { HeadEndScanner, readHead, type HeadError } from '../src/head.ts';

const MAX = 64 * 1024;

describe('HeadEndScanner', () => {
  it.each([
    [['GET / HTTP/1.1\r\n\r\n'], 18],
    [['GET / HTTP/1.1\r', '\n', '\r', '\nBODY'], 18],
    [['GET / HTTP/1.1\r\nA: b\r\r\n\r\n'], 25],
    [['GET / HTTP/1.1\r\n\r', '\r\n\r\n'], 21],
    [['GET / HTTP/1.1\r\n'], -1],
  ])('%j ends at %i', (chunks, want) => {
    const scanner = new HeadEndScanner();
    let end = -1;
    let before = 0;
    for (const c of chunks) {
      const cut = scanner.push(Buffer.from(c, 'latin1'));
      if (cut >= 0) {
        end = before + cut;
        break;
      }
      before += c.length;
    }
    expect(end).toBe(want);
  });
});

describe('readHead', () => {
  it('returns the head, what follows it, and the parsed request', async () => {
    const socket = new PassThrough();
    const reading = readHead(socket, MAX, 1_000);
    socket.write('GET /x HTTP/1.1\r\nHost: n:10250\r');
    socket.write('\n\r\nbody');
    const { head, rest, request } = await reading;
    expect(head.toString()).toBe('GET /x HTTP/1.1\r\nHost: n:10250\r\n\r\n');
    expect(rest.toString()).toBe('body');
    expect(request).toMatchObject({ method: 'GET', url: '/x', host: 'n:10250' });
  });

  it('a 64 KiB head sent a byte at a time costs little CPU (no rescans, no re-copies)', async () => {
    // Chunks go straight to the parser's listener, so only the parser's cost is measured.
    const socket = Object.assign(new EventEmitter(), { pause: () => undefined, destroyed: false }) as unknown as PassThrough;
    const reading = readHead(socket, MAX, 10_000);
    const filler = `X-Filler: ${'a'.repeat(MAX - 200)}\r\n`;
    const text = Buffer.from(`GET / HTTP/1.1\r\nHost: n:10250\r\n${filler}\r\n`, 'latin1');
    const started = process.cpuUsage();
    for (let i = 0; i < text.length; i++) socket.emit('data', text.subarray(i, i + 1));
    const { request } = await reading;
    const used = process.cpuUsage(started);
    expect(request.host).toBe('n:10250');
    expect((used.user + used.system) / 1000).toBeLessThan(100);
  });

  it('refuses a head beyond the limit with 431 as soon as it passes the limit', async () => {
    const socket = new PassThrough();
    const reading = readHead(socket, 1024, 1_000);
    socket.write(`GET / HTTP/1.1\r\nX: ${'a'.repeat(2048)}`);
    await expect(reading).rejects.toMatchObject({ status: 431 } satisfies Partial<HeadError>);
  });
});
