import { once } from 'node:events';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect } from 'node:net';
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect as tlsConnect } from 'node:tls';
import { OP, encodeFrame, newKey, readFrames, type Frame } from '@raven/testbed';

/** The four kinds of call a cloud component makes to an edge node through the proxy; no test-bed imports (they run inside box nodes too). */

/** A caller's client certificate for the HTTPS front end. */
export interface Identity {
  cert: string;
  key: string;
}

export interface HttpResult {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request over a fresh connection, to `port` on `address`, with the given Host header. */
export function httpGet(o: { address: string; port: number; host: string; path: string; headers?: Record<string, string>; tls?: { ca: string; cert?: string; key?: string }; timeoutMs?: number }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const common = { host: o.address, port: o.port, path: o.path, method: 'GET', headers: { host: o.host, ...o.headers }, agent: false as const, timeout: o.timeoutMs ?? 10_000 };
    const req = o.tls
      ? httpsRequest({ ...common, ca: o.tls.ca, cert: o.tls.cert, key: o.tls.key, servername: undefined, rejectUnauthorized: false })
      : httpRequest(common);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${o.host}${o.path}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Reads a streamed (chunked) response until `lines` lines arrived, then drops the connection. */
export function followLines(o: { address: string; port: number; host: string; path: string; lines: number; tls?: boolean; identity?: Identity }): Promise<{ status: number; lines: string[]; chunks: number }> {
  return new Promise((resolve, reject) => {
    const common = { host: o.address, port: o.port, path: o.path, headers: { host: o.host }, agent: false as const };
    const req = o.tls ? httpsRequest({ ...common, rejectUnauthorized: false, ...o.identity }) : httpRequest(common);
    req.on('response', (res) => {
      let text = '';
      let chunks = 0;
      res.on('data', (d: Buffer) => {
        chunks++;
        text += d.toString();
        const lines = text.split('\n').filter(Boolean);
        if (lines.length >= o.lines) {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, lines: lines.slice(0, o.lines), chunks });
        }
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, lines: text.split('\n').filter(Boolean), chunks }));
    });
    req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
    req.end();
  });
}

/**
 * An exec over websocket (v5.channel.k8s.io) through a front end: sends `inputs` on stdin, then the v5 "stdin closed"
 * signal, and collects stdout until the server closes.
 */
export async function wsExec(o: { address: string; port: number; host: string; path: string; inputs: string[]; tls?: boolean; identity?: Identity }): Promise<{ status: string; stdout: string[]; exitStatus: string | undefined }> {
  const socket: Duplex = o.tls ? tlsConnect({ host: o.address, port: o.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'], ...o.identity }) : netConnect({ host: o.address, port: o.port });
  await once(socket, o.tls ? 'secureConnect' : 'connect');
  socket.write(`GET ${o.path} HTTP/1.1\r\nHost: ${o.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${newKey()}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n`);
  const head = await new Promise<{ status: string; rest: Buffer }>((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      socket.off('data', onData);
      resolve({ status: buffer.subarray(0, buffer.indexOf('\r\n')).toString(), rest: buffer.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.once('close', () => reject(new Error('closed before the upgrade answer')));
  });
  if (!head.status.includes(' 101 ')) {
    socket.destroy();
    return { status: head.status, stdout: [], exitStatus: undefined };
  }
  const stdout: string[] = [];
  let exitStatus: string | undefined;
  const done = new Promise<void>((resolve) => {
    socket.once('close', () => resolve());
    readFrames(socket, ({ opcode, payload }: Frame) => {
      if (opcode === OP.close) return void socket.end();
      if (payload[0] === 1) stdout.push(payload.subarray(1).toString());
      if (payload[0] === 3) exitStatus = (JSON.parse(payload.subarray(1).toString()) as { status: string }).status;
    }, head.rest);
  });
  for (const input of o.inputs) socket.write(encodeFrame(OP.binary, Buffer.concat([Buffer.from([0]), Buffer.from(input)]), true));
  socket.write(encodeFrame(OP.binary, Buffer.from([255, 0]), true));
  await Promise.race([done, sleep(10_000).then(() => socket.destroy())]);
  return { status: head.status, stdout, exitStatus };
}
