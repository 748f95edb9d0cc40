import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer as createHttp2Server, type Http2Server } from 'node:http2';
import {
  AgentTunnel, TunnelServer, tcpDialer,
  type AgentServiceOptions, type AgentTunnelOptions, type TunnelServerOptions,
} from '../src/index.ts';

export const LOCALHOST = '127.0.0.1';

/** A TCP server on an ephemeral loopback port; every accepted socket is tracked for cleanup. */
export async function tcpServer(onSocket: (socket: Socket) => void): Promise<{ port: number; sockets: Set<Socket>; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server: NetServer = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  server.listen(0, LOCALHOST);
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    sockets,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export const echoServer = () => tcpServer((socket) => socket.pipe(socket));

export interface RunningTunnelServer {
  tunnel: TunnelServer;
  http2: Http2Server;
  port: number;
  address: string;
  stop(): Promise<void>;
}

/** Our TunnelServer on a plaintext HTTP/2 server (the transport security is the caller's business). */
export async function startTunnelServer(options: Partial<TunnelServerOptions> & AgentServiceOptions = {}, port = 0): Promise<RunningTunnelServer> {
  const { keepaliveMs, keepaliveTimeoutMs, receiveWindowBytes, ...serverOptions } = options;
  const tunnel = new TunnelServer({ serverId: 'server-1', serverCount: 1, ...serverOptions });
  const http2 = createHttp2Server();
  const service = tunnel.attach(http2, { keepaliveMs, keepaliveTimeoutMs, receiveWindowBytes });
  http2.listen(port, LOCALHOST);
  await once(http2, 'listening');
  const bound = (http2.address() as AddressInfo).port;
  return {
    tunnel, http2, port: bound, address: `${LOCALHOST}:${bound}`,
    stop: async () => {
      tunnel.close();
      await service.close(); // drops every session at once: a server crash, as agents see it
      await sleep(10);
    },
  };
}

export function agentOptions(address: string, overrides: Partial<AgentTunnelOptions> = {}): AgentTunnelOptions {
  return {
    address,
    tls: undefined,
    agentId: 'agent-a',
    identifiers: { host: ['node-a'] },
    dialer: tcpDialer(),
    ...overrides,
  };
}

export const connectAgent = (address: string, overrides: Partial<AgentTunnelOptions> = {}) => AgentTunnel.connect(agentOptions(address, overrides));

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Reads exactly `length` bytes without ending or destroying the stream (unlike breaking out of for-await). */
export function readExactly(stream: Readable, length: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', reject);
    };
    const onReadable = () => {
      const chunk = stream.read(length) as Buffer | null;
      if (chunk === null) return;
      cleanup();
      resolve(chunk);
    };
    const onEnd = () => {
      cleanup();
      reject(new Error(`stream ended before ${length} bytes arrived`));
    };
    stream.on('readable', onReadable);
    stream.once('end', onEnd);
    stream.once('error', reject);
    onReadable();
  });
}

export async function waitFor(what: string, check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Deterministic pseudo-random content, so corruption anywhere in a long transfer shows up in the hash. */
export function patternChunk(index: number, size: number): Buffer {
  const chunk = Buffer.allocUnsafe(size);
  let x = (index + 1) * 2654435761;
  for (let i = 0; i < size; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    chunk.writeUInt32LE(x, i);
  }
  return chunk;
}

export function sha256(...buffers: Buffer[]): string {
  const hash = createHash('sha256');
  for (const b of buffers) hash.update(b);
  return hash.digest('hex');
}
